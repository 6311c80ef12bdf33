// Package pluginpb is the generated code of the fnhost plugin protocol (function.proto). Do not
// edit the generated files: change function.proto and run go generate.
package pluginpb

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. function.proto"
