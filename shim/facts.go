package shim

import (
	"context"
	"fmt"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/triage-runtime/triage/classifier"
)

// metadataTimeout bounds the containerd API calls made at start.
const metadataTimeout = 3 * time.Second

// gatherFacts reads what containerd knows about the container: its labels
// and image, and its namespace's labels. Trust decisions depend on them, so
// failing to read them fails the start.
func gatherFacts(ctx context.Context, f flags) (classifier.Facts, error) {
	facts := classifier.Facts{Namespace: f.namespace}
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+f.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return facts, fmt.Errorf("containerd API at %s: %w", f.address, err)
	}
	defer conn.Close()
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
	return facts, nil
}
