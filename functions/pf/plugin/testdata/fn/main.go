// Command fn is a test function for the plugin protocol's process tests. What it does depends
// on its input:
//
//	stream:N  emits N outputs "0".."N-1", then returns "done"
//	error     fails with "bad input"
//	panic     panics with "boom"
//	hang      blocks until its context ends
//	stuck     ignores its context: returns "late" after a minute
//	config    returns its userConfig (as JSON) and its fully qualified name
//	ack       acks its input (processingGuarantees MANUAL)
//	metric    records the metric "m" = 2
//	log       logs a warning "from the function"
//	produce   asks for a NewOutputMessage producer
//	anything else: returned upper-cased
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fnhost/fnhost/functions/pf"
)

func handle(ctx context.Context, in []byte) ([]byte, error) {
	fc, ok := pf.FromContext(ctx)
	if !ok {
		return nil, errors.New("no function context")
	}
	s := string(in)
	switch {
	case strings.HasPrefix(s, "stream:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "stream:"))
		if err != nil {
			return nil, err
		}
		for i := range n {
			if err := fc.Emit(ctx, []byte(strconv.Itoa(i))); err != nil {
				return nil, err
			}
		}
		return []byte("done"), nil
	case s == "error":
		return nil, errors.New("bad input")
	case s == "panic":
		panic("boom")
	case s == "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	case s == "stuck":
		<-time.After(time.Minute) // what is tested: a function deaf to its deadline
		return []byte("late"), nil
	case s == "config":
		b, err := json.Marshal(fc.GetUserConfMap())
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, "%s %s", fc.GetTenantAndNamespaceAndName(), b), nil
	case s == "ack":
		return nil, fc.Ack()
	case s == "metric":
		fc.RecordMetric("m", 2)
		return nil, nil
	case s == "log":
		fc.Logger().Warn("from the function", "k", "v")
		return nil, nil
	case s == "produce":
		_, err := fc.NewOutputMessageWithError("persistent://public/default/out")
		return nil, err
	}
	return []byte(strings.ToUpper(s)), nil
}

func main() { pf.Start(handle) }
