// The Go twin of coronet-grpc-interop for the gRPC load test: grpc-go's
// server (Debian's golang-google-grpc-dev) with grpc.testing.TestService's
// UnaryCall and StreamingOutputCall, the messages and service code that
// protoc-gen-go (Debian's golang-github-golang-protobuf-1-3-dev) writes from
// apps/grpc-interop/proto. loadtest/run.sh generates that code into
// coronet-peer/testpb and builds this in GOPATH mode: no module download.
// Run with GOMAXPROCS=1 to compare against one coronet worker.
package main

import (
	"context"
	"flag"
	"log"
	"net"

	"google.golang.org/grpc"

	pb "coronet-peer/testpb"
)

type server struct {
	pb.UnimplementedTestServiceServer
}

func payload(size int32) *pb.Payload {
	return &pb.Payload{Body: make([]byte, size)}
}

func (server) EmptyCall(context.Context, *pb.Empty) (*pb.Empty, error) {
	return &pb.Empty{}, nil
}

func (server) UnaryCall(_ context.Context, q *pb.SimpleRequest) (*pb.SimpleResponse, error) {
	return &pb.SimpleResponse{Payload: payload(q.ResponseSize)}, nil
}

func (server) StreamingOutputCall(q *pb.StreamingOutputCallRequest, out pb.TestService_StreamingOutputCallServer) error {
	for _, p := range q.ResponseParameters {
		if err := out.Send(&pb.StreamingOutputCallResponse{Payload: payload(p.Size)}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8095", "address to serve on")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	s := grpc.NewServer()
	pb.RegisterTestServiceServer(s, &server{})
	log.Fatal(s.Serve(l))
}
