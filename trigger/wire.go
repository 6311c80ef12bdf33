package trigger

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// outputJSON is the JSON form of an Output, used by the JSON array of a synchronous response
// with several outputs, the NDJSON stream, invocation records and callbacks. The payload is
// a JSON string in "payload" when it is valid UTF-8, else standard base64 in "payload_base64";
// exactly one of the two is present, so a client never guesses.
type outputJSON struct {
	Seq           int64             `json:"seq"`
	Payload       *string           `json:"payload,omitempty"`
	PayloadBase64 *string           `json:"payload_base64,omitempty"`
	Key           string            `json:"key,omitempty"`
	Properties    map[string]string `json:"properties,omitempty"`
	ContentType   string            `json:"content_type,omitempty"`
	Attempt       int               `json:"attempt,omitempty"`
}

// MarshalJSON encodes o as described on outputJSON.
func (o Output) MarshalJSON() ([]byte, error) {
	j := outputJSON{Seq: o.Seq, Key: o.Key, Properties: o.Properties, ContentType: o.ContentType, Attempt: o.Attempt}
	if utf8.Valid(o.Payload) {
		s := string(o.Payload)
		j.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(o.Payload)
		j.PayloadBase64 = &s
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the form MarshalJSON writes.
func (o *Output) UnmarshalJSON(b []byte) error {
	var j outputJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*o = Output{Seq: j.Seq, Key: j.Key, Properties: j.Properties, ContentType: j.ContentType, Attempt: j.Attempt}
	switch {
	case j.Payload != nil && j.PayloadBase64 != nil:
		return errors.New("output has both payload and payload_base64")
	case j.Payload != nil:
		o.Payload = []byte(*j.Payload)
	case j.PayloadBase64 != nil:
		p, err := base64.StdEncoding.DecodeString(*j.PayloadBase64)
		if err != nil {
			return err
		}
		o.Payload = p
	}
	return nil
}
