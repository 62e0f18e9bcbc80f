// Command gotemplate renders Go templates with sprig v3 exactly as kubernetes-event-exporter
// does (text/template, sprig.TxtFuncMap, a *kube.EnhancedEvent as data), for the conformance
// test of the shipper's Python engine.
//
// Standard input: a JSON array of cases {"template": "...", "event": {...}} or
// {"template": "...", "data": <any JSON>}. Standard output: a JSON array with, for each case,
// {"output": "..."} or {"error": "..."} (parse and execution errors alike).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"kube-event-shipper/gotemplate/kube"
)

type testCase struct {
	Template string          `json:"template"`
	Event    json.RawMessage `json:"event,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

func render(c testCase) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	tmpl, err := template.New("template").Funcs(sprig.TxtFuncMap()).Parse(c.Template)
	if err != nil {
		return "", err
	}
	var data any
	if len(c.Event) > 0 {
		event := &kube.EnhancedEvent{}
		if err := json.Unmarshal(c.Event, event); err != nil {
			return "", fmt.Errorf("bad event: %w", err)
		}
		// The exporter copies the Event's involvedObject into both places (pkg/kube/watcher.go);
		// JSON fills only the outer one, which hides the embedded field of the same name.
		event.Event.InvolvedObject = event.InvolvedObject.ObjectReference
		data = event
	} else if len(c.Data) > 0 {
		if err := json.Unmarshal(c.Data, &data); err != nil {
			return "", fmt.Errorf("bad data: %w", err)
		}
	}
	buf := new(bytes.Buffer)
	if err := tmpl.Execute(buf, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "gotemplate: reading cases:", err)
		os.Exit(2)
	}
	results := make([]result, len(cases))
	for i, c := range cases {
		out, err := render(c)
		if err != nil {
			msg := err.Error()
			results[i].Error = &msg
		} else {
			results[i].Output = &out
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "gotemplate: writing results:", err)
		os.Exit(2)
	}
}
