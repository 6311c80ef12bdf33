package call

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Message is an input that did not come from a Pulsar consumer in this process: one the host
// runtime forwarded over the plugin protocol, or one the one-shot runner read from stdin. It
// implements pulsar.Message so that FunctionContext.GetCurrentRecord works in every mode.
type Message struct {
	TopicName       string
	Producer        string
	Props           map[string]string
	Data            []byte
	MsgID           pulsar.MessageID
	Published       time.Time
	Event           time.Time
	MsgKey          string
	OrderKey        string
	Redeliveries    uint32
	ReplicatedFrom  string
	BrokerPublished *time.Time
}

var _ pulsar.Message = (*Message)(nil)

// Topic implements pulsar.Message.
func (m *Message) Topic() string { return m.TopicName }

// ProducerName implements pulsar.Message.
func (m *Message) ProducerName() string { return m.Producer }

// Properties implements pulsar.Message.
func (m *Message) Properties() map[string]string { return m.Props }

// Payload implements pulsar.Message.
func (m *Message) Payload() []byte { return m.Data }

// ID implements pulsar.Message; it is pulsar.EarliestMessageID() when no id is known.
func (m *Message) ID() pulsar.MessageID {
	if m.MsgID == nil {
		return pulsar.EarliestMessageID()
	}
	return m.MsgID
}

// PublishTime implements pulsar.Message.
func (m *Message) PublishTime() time.Time { return m.Published }

// EventTime implements pulsar.Message.
func (m *Message) EventTime() time.Time { return m.Event }

// Key implements pulsar.Message.
func (m *Message) Key() string { return m.MsgKey }

// OrderingKey implements pulsar.Message.
func (m *Message) OrderingKey() string { return m.OrderKey }

// RedeliveryCount implements pulsar.Message.
func (m *Message) RedeliveryCount() uint32 { return m.Redeliveries }

// IsReplicated implements pulsar.Message.
func (m *Message) IsReplicated() bool { return m.ReplicatedFrom != "" }

// GetReplicatedFrom implements pulsar.Message.
func (m *Message) GetReplicatedFrom() string { return m.ReplicatedFrom }

// GetSchemaValue decodes the payload as JSON into v: inputs outside a consumer carry no
// schema, and JSON is what fnhost's HTTP trigger and tools send.
func (m *Message) GetSchemaValue(v any) error {
	if v == nil {
		return errors.New("GetSchemaValue: nil target")
	}
	return json.Unmarshal(m.Data, v)
}

// SchemaVersion implements pulsar.Message; there is none.
func (m *Message) SchemaVersion() []byte { return nil }

// GetEncryptionContext implements pulsar.Message; inputs here are never encrypted.
func (m *Message) GetEncryptionContext() *pulsar.EncryptionContext { return nil }

// Index implements pulsar.Message; there is no broker index.
func (m *Message) Index() *uint64 { return nil }

// BrokerPublishTime implements pulsar.Message.
func (m *Message) BrokerPublishTime() *time.Time { return m.BrokerPublished }
