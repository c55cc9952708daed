package shim

import (
	"context"
	"fmt"
	"sync"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-runtime/triage/classifier"
)

// metadataTimeout bounds the containerd API calls made at start.
const metadataTimeout = 3 * time.Second

// connIdle is how long a connection to containerd stays open without a
// call: through a burst of starts (a pod, a deployment), not much longer.
const connIdle = 5 * time.Second

// conns are the connections to containerd, one per address, for the
// process's life; each is closed when idle and opened again on demand. A
// start in triage-shimd thus does not open one of its own (with containerd
// serving the handshake on the same two cores as the delegate's start).
var conns = struct {
	sync.Mutex
	m map[string]*grpc.ClientConn
}{m: map[string]*grpc.ClientConn{}}

func containerdConn(address string) (*grpc.ClientConn, error) {
	conns.Lock()
	defer conns.Unlock()
	if c := conns.m[address]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithIdleTimeout(connIdle))
	if err != nil {
		return nil, err
	}
	conns.m[address] = c
	return c, nil
}

// gatherFacts reads what containerd knows about the container: its labels,
// its image, whether the CRI plugin made it, and its namespace's labels.
// Trust decisions depend on them, so failing to read them fails the start.
func gatherFacts(ctx context.Context, f flags) (classifier.Facts, error) {
	facts := classifier.Facts{Namespace: f.namespace}
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	conn, err := containerdConn(f.address)
	if err != nil {
		return facts, fmt.Errorf("containerd API at %s: %w", f.address, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", f.namespace)
	// The two reads are independent: overlap them.
	nsc := make(chan error, 1)
	go func() {
		ns, err := namespacesapi.NewNamespacesClient(conn).Get(ctx, &namespacesapi.GetNamespaceRequest{Name: f.namespace})
		if err != nil {
			nsc <- fmt.Errorf("read namespace %s from containerd at %s: %w", f.namespace, f.address, err)
			return
		}
		facts.NamespaceLabels = ns.GetNamespace().GetLabels()
		nsc <- nil
	}()
	c, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: f.id})
	if nsErr := <-nsc; nsErr != nil {
		return facts, nsErr
	}
	if err != nil {
		return facts, fmt.Errorf("read container %s from containerd at %s: %w", f.id, f.address, err)
	}
	facts.Labels = c.GetContainer().GetLabels()
	facts.Image = c.GetContainer().GetImage()
	facts.CRI = madeByCRI(c.GetContainer().GetExtensions())
	return facts, nil
}

// imageDigest reads the digest containerd's record of image holds (its target), for a
// policy whose rules read it; "" when the image was removed since the container was made.
func imageDigest(ctx context.Context, f flags, image string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	conn, err := containerdConn(f.address)
	if err != nil {
		return "", fmt.Errorf("containerd API at %s: %w", f.address, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", f.namespace)
	img, err := imagesapi.NewImagesClient(conn).Get(ctx, &imagesapi.GetImageRequest{Name: image})
	switch {
	case status.Code(err) == codes.NotFound:
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read image %s from containerd at %s: %w", image, f.address, err)
	}
	return img.GetImage().GetTarget().GetDigest(), nil
}

// The CRI plugin's metadata extensions (containerd internal/cri/labels, the same in 1.6
// and 2.x). A containerd client such as ctr or nerdctl cannot set a container's
// extensions; a program using containerd's API can, which takes the node's root.
const (
	criContainerExtension = "io.cri-containerd.container.metadata"
	criSandboxExtension   = "io.cri-containerd.sandbox.metadata"
)

func madeByCRI(extensions map[string]*anypb.Any) bool {
	_, c := extensions[criContainerExtension]
	_, s := extensions[criSandboxExtension]
	return c || s
}
