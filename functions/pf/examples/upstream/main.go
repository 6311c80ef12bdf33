// Command upstream is written against the API of Apache's pulsar-function-go SDK, the way
// functions for it are written: the only fnhost-specific lines are the two import paths below,
// which for Apache's SDK read
//
//	"github.com/apache/pulsar/pulsar-function-go/logutil"
//	"github.com/apache/pulsar/pulsar-function-go/pf"
//
// It compiles with every build of this repository, which proves that such a function ports by
// changing its imports. It touches every accessor of upstream's FunctionContext, its
// package-level helpers, NewOutputMessage and RecordMetric, and logutil.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf"
	"github.com/fnhost/fnhost/functions/pf/logutil"
)

// audit reports on the function's context and forwards the input, annotated, to the topic
// named by userConfig "auditTopic" when one is set.
func audit(ctx context.Context, input []byte) ([]byte, error) {
	fc, ok := pf.FromContext(ctx)
	if !ok {
		return nil, errors.New("no function context")
	}
	logutil.Infof("instance %d of %s (id %s, version %s) on %s, port %d, metrics %d",
		fc.GetInstanceID(), fc.GetTenantAndNamespaceAndName(), fc.GetFuncID(), fc.GetFuncVersion(),
		fc.GetClusterName(), fc.GetPort(), fc.GetMetricsPort())
	logutil.Debugf("inputs %v, output %s, tenant %s, namespace %s (%s), name %s",
		fc.GetInputTopics(), fc.GetOutputTopic(), fc.GetFuncTenant(), fc.GetFuncNamespace(),
		fc.GetTenantAndNamespace(), fc.GetFuncName())
	logutil.Debug("health check every ", fc.GetExpectedHealthCheckInterval(), "s; ",
		fc.GetExpectedHealthCheckIntervalAsDuration(), " max idle ", fc.GetMaxIdleTime())

	record := fc.GetCurrentRecord()
	fc.SetCurrentRecord(record)
	fc.RecordMetric("input-bytes", float64(len(input)))

	if topic, ok := fc.GetUserConfValue("auditTopic").(string); ok && topic != "" {
		producer, err := fc.NewOutputMessageWithError(topic)
		if err != nil {
			logutil.Warnf("audit topic %s: %v", topic, err)
		} else if _, err := producer.Send(ctx, &pulsar.ProducerMessage{
			Payload:    input,
			Key:        record.Key(),
			Properties: map[string]string{"audited-from": record.Topic()},
		}); err != nil {
			logutil.Errorf("auditing to %s: %v", topic, err)
		}
	}
	if len(fc.GetUserConfMap()) == 0 {
		logutil.Warn("no userConfig")
	}
	return []byte(fmt.Sprintf("%s:%s", record.ID(), strings.TrimSpace(string(input)))), nil
}

func main() {
	// Upstream's package-level helpers, usable before Start.
	if v := pf.GetUserConfValue("banner"); v != nil {
		logutil.Info(v)
	}
	_ = pf.GetUserConfMap()
	ctx := pf.NewContext(context.Background(), pf.NewFuncContext())
	if _, ok := pf.FromContext(ctx); !ok {
		logutil.Fatal("NewContext lost the function context")
	}
	pf.Start(audit)
}
