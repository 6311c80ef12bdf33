// Command enrich is an example function with JSON in and out that uses the message key: it
// adds the key, the input topic and a source label to a JSON object.
//
// userConfig:
//
//	source  the label written to "source" (default "fnhost")
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fnhost/fnhost/functions/pf"
)

// Meta is what enrich adds, under the "_meta" field of the input object.
type Meta struct {
	Key    string `json:"key"`
	Topic  string `json:"topic"`
	Source string `json:"source"`
}

var errNotObject = errors.New("enrich: input must be a JSON object")

func handle(ctx context.Context, in []byte) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(in, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: %q", errNotObject, truncate(in, 64))
	}
	meta := Meta{Source: "fnhost"}
	if fc, ok := pf.FromContext(ctx); ok {
		meta.Key = fc.InputKey()
		meta.Topic = fc.GetCurrentRecord().Topic()
		if s, ok := fc.GetUserConfValue("source").(string); ok && s != "" {
			meta.Source = s
		}
	}
	m, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	obj["_meta"] = m
	return json.Marshal(obj)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func main() { pf.Start(handle) }
