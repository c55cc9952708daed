package delegate

import (
	"testing"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"google.golang.org/protobuf/proto"
)

func TestParseReply(t *testing.T) {
	pb, err := proto.Marshal(&bootstrap.BootstrapResult{Version: 3, Address: "unix:///run/containerd/s/abc", Protocol: "ttrpc"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		want    Reply
		wantErr bool
	}{
		{name: "plain", in: []byte("unix:///run/containerd/s/abc\n"), want: Reply{"unix:///run/containerd/s/abc", 2, "ttrpc"}},
		{name: "json v2", in: []byte(`{"version":2,"address":"unix:///s/x","protocol":"ttrpc"}`), want: Reply{"unix:///s/x", 2, "ttrpc"}},
		{name: "json v3", in: []byte(`{"version":3,"address":"unix:///s/x","protocol":"ttrpc"}`), want: Reply{"unix:///s/x", 3, "ttrpc"}},
		{name: "protobuf", in: pb, want: Reply{"unix:///run/containerd/s/abc", 3, "ttrpc"}},
		{name: "grpc refused", in: []byte(`{"version":3,"address":"unix:///s/x","protocol":"grpc"}`), wantErr: true},
		{name: "version 4 refused", in: []byte(`{"version":4,"address":"unix:///s/x"}`), wantErr: true},
		{name: "empty", in: []byte("  \n"), wantErr: true},
		{name: "garbage", in: []byte("time=x level=fatal msg=boom"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReply(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseReply(%q) = %+v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseReply(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}
