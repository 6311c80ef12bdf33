// Command wordcount is an example function that uses userConfig: it counts the words of its
// input and returns the counts as JSON.
//
// userConfig:
//
//	minLength   words shorter than this are not counted (default 1)
//	ignoreCase  count "Pulsar" and "pulsar" as one word (default true)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/fnhost/fnhost/functions/pf"
)

// Counts is the output: the number of words counted and each word's count.
type Counts struct {
	Words  int            `json:"words"`
	Counts map[string]int `json:"counts"`
}

type options struct {
	minLength  int
	ignoreCase bool
}

func optionsFrom(ctx context.Context) (options, error) {
	o := options{minLength: 1, ignoreCase: true}
	fc, ok := pf.FromContext(ctx)
	if !ok {
		return o, nil
	}
	if v := fc.GetUserConfValue("minLength"); v != nil {
		n, ok := v.(float64)
		if !ok || n < 0 || n != float64(int(n)) {
			return o, fmt.Errorf("userConfig minLength: want a whole number ≥ 0, got %v", v)
		}
		o.minLength = int(n)
	}
	if v := fc.GetUserConfValue("ignoreCase"); v != nil {
		b, ok := v.(bool)
		if !ok {
			return o, fmt.Errorf("userConfig ignoreCase: want true or false, got %v", v)
		}
		o.ignoreCase = b
	}
	return o, nil
}

func handle(ctx context.Context, in []byte) ([]byte, error) {
	o, err := optionsFrom(ctx)
	if err != nil {
		return nil, err
	}
	c := Counts{Counts: map[string]int{}}
	words := strings.FieldsFunc(string(in), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) && r != '\'' })
	for _, w := range words {
		if len([]rune(w)) < o.minLength {
			continue
		}
		if o.ignoreCase {
			w = strings.ToLower(w)
		}
		c.Counts[w]++
		c.Words++
	}
	if fc, ok := pf.FromContext(ctx); ok {
		fc.RecordMetric("words", float64(c.Words))
	}
	return json.Marshal(c)
}

func main() { pf.Start(handle) }
