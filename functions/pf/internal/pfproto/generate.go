// Package pfproto holds fnhost's own protobuf definitions of the Pulsar Functions messages the
// Go instance needs: the FunctionDetails subset it reads from the worker's configuration, and
// the proto.InstanceControl gRPC service the worker calls for status, metrics and health.
//
// The .proto files are written for fnhost; field names, numbers and the "proto" package come
// from Pulsar's contract. The Go files are generated; regenerate with
//
//	go generate ./functions/pf/internal/pfproto
package pfproto

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) -I ../../../.. --go_out=../../../.. --go_opt=paths=source_relative --go-grpc_out=../../../.. --go-grpc_opt=paths=source_relative functions/pf/internal/pfproto/function.proto functions/pf/internal/pfproto/instance_communication.proto"
