package router

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ttrpc's wire format (github.com/containerd/ttrpc PROTOCOL.md): a 10-byte
// header (payload length, stream id, message type, flags; big endian), then
// a protobuf ttrpc.Request or ttrpc.Response.
const (
	headerLen   = 10
	maxPayload  = 4 << 20 // ttrpc's own limit
	typeRequest = 0x1
	typeReply   = 0x2
)

// frame is one whole ttrpc message, header included, as read off a
// connection: relayed as it is, it needs one write.
type frame []byte

// newFrame returns a frame for a payload of n bytes.
func newFrame(n int) frame {
	f := make(frame, headerLen+n)
	binary.BigEndian.PutUint32(f, uint32(n))
	return f
}

func (f frame) payloadLen() int     { return int(binary.BigEndian.Uint32(f[:4])) }
func (f frame) stream() uint32      { return binary.BigEndian.Uint32(f[4:8]) }
func (f frame) setStream(id uint32) { binary.BigEndian.PutUint32(f[4:8], id) }
func (f frame) kind() byte          { return f[8] }
func (f frame) payload() []byte     { return f[headerLen:] }
func (f frame) oversized() bool     { return f.payloadLen() > maxPayload }

// withPayload returns a frame with f's header and payload p.
func (f frame) withPayload(p []byte) frame {
	n := newFrame(len(p))
	copy(n[4:headerLen], f[4:headerLen])
	copy(n.payload(), p)
	return n
}

// readFrame reads the next message from r. A message over ttrpc's limit is
// returned as its header alone, its payload left unread.
func readFrame(r *bufio.Reader) (frame, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	if frame(h[:]).oversized() {
		return frame(h[:]), nil
	}
	f := newFrame(frame(h[:]).payloadLen())
	copy(f, h[:])
	if _, err := io.ReadFull(r, f.payload()); err != nil {
		return nil, err
	}
	return f, nil
}

// request is what the relay reads of a ttrpc.Request: where it goes, and the
// container it names.
type request struct {
	service, method string
	// id is field 1 of the payload: the container id in every task API
	// request the relay forwards.
	id string
}

// parseRequest reads a ttrpc.Request's service and method, and the first
// field of its payload, without decoding the rest.
func parseRequest(b []byte) (request, error) {
	var r request
	var payload []byte
	err := eachField(b, func(num protowire.Number, v []byte) {
		switch num {
		case 1:
			r.service = string(v)
		case 2:
			r.method = string(v)
		case 3:
			payload = v
		}
	})
	if err != nil {
		return r, err
	}
	err = eachField(payload, func(num protowire.Number, v []byte) {
		if num == 1 && r.id == "" {
			r.id = string(v)
		}
	})
	return r, err
}

// eachField calls fn with every length-delimited field of message b; other
// wire types are skipped.
func eachField(b []byte, fn func(protowire.Number, []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			fn(num, v)
			n = m
		} else if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

// withService returns request frame f addressed to service instead: the
// task API's v2 and v3 differ only in that name. Every other field is kept
// byte for byte.
func withService(f frame, service string) frame {
	p := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), service)
	b := f.payload()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return f // parseRequest read it whole before: not reached
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return f
		}
		if num != 1 {
			p = append(p, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return f.withPayload(p)
}

// errorReply is a ttrpc.Response frame for stream id carrying an error, as a
// ttrpc server sends it.
func errorReply(id uint32, code codes.Code, format string, args ...any) frame {
	b, err := proto.Marshal(&ttrpc.Response{Status: status.New(code, fmt.Sprintf(format, args...)).Proto()})
	if err != nil {
		panic(err) // a Response with a status always encodes
	}
	f := newFrame(len(b))
	f.setStream(id)
	f[8] = typeReply
	copy(f.payload(), b)
	return f
}
