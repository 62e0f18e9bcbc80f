// Package kube mirrors kubernetes-event-exporter's pkg/kube/event.go: the EnhancedEvent its
// sinks execute layout templates with (as a pointer), and its methods.
package kube

import (
	"encoding/json"
	"strings"
	"time"

	v1 "kube-event-shipper/gotemplate/v1"
)

// EnhancedEvent is an Event plus the cluster name and the involved object's labels.
type EnhancedEvent struct {
	v1.Event       `json:",inline"`
	ClusterName    string                  `json:"clusterName"`
	InvolvedObject EnhancedObjectReference `json:"involvedObject"`
}

// EnhancedObjectReference carries the involved object's labels, annotations, owners and
// whether it was found deleted (v1.7: pkg/kube/event.go).
type EnhancedObjectReference struct {
	v1.ObjectReference `json:",inline"`
	Labels             map[string]string   `json:"labels,omitempty"`
	Annotations        map[string]string   `json:"annotations,omitempty"`
	OwnerReferences    []v1.OwnerReference `json:"ownerReferences,omitempty"`
	Deleted            bool                `json:"deleted"`
}

// DeDot replaces the dots in label and annotation keys with underscores.
func (e EnhancedEvent) DeDot() EnhancedEvent {
	c := e
	c.Labels = dedotMap(e.Labels)
	c.Annotations = dedotMap(e.Annotations)
	c.InvolvedObject.Labels = dedotMap(e.InvolvedObject.Labels)
	c.InvolvedObject.Annotations = dedotMap(e.InvolvedObject.Annotations)
	return c
}

func dedotMap(in map[string]string) map[string]string {
	if len(in) == 0 {
		return in
	}
	ret := make(map[string]string, len(in))
	for key, value := range in {
		ret[strings.ReplaceAll(key, ".", "_")] = value
	}
	return ret
}

// ToJSON is the event as JSON.
func (e *EnhancedEvent) ToJSON() []byte {
	b, _ := json.Marshal(e)
	return b
}

// GetTimestampMs is the first timestamp (else the event time) in Unix milliseconds.
func (e *EnhancedEvent) GetTimestampMs() int64 {
	timestamp := e.FirstTimestamp.Time
	if timestamp.IsZero() {
		timestamp = e.EventTime.Time
	}
	return timestamp.UnixNano() / (int64(time.Millisecond) / int64(time.Nanosecond))
}

// GetTimestampISO8601 is the first timestamp (else the event time) as ISO 8601.
func (e *EnhancedEvent) GetTimestampISO8601() string {
	timestamp := e.FirstTimestamp.Time
	if timestamp.IsZero() {
		timestamp = e.EventTime.Time
	}
	return timestamp.Format("2006-01-02T15:04:05.000Z")
}
