// Package v1 mirrors the parts of k8s.io/api/core/v1 and k8s.io/apimachinery/pkg/apis/meta/v1
// that an Event is made of, with the same Go field names, types and JSON tags, so that a
// template sees what it sees in kubernetes-event-exporter without importing client-go.
// Left out: ObjectMeta's generateName, selfLink, generation, deletion*, ownerReferences,
// finalizers, managedFields, and Event's series and related (the shipper does not keep them).
package v1

import (
	"encoding/json"
	"time"

	"kube-event-shipper/gotemplate/types"
)

// Time is metav1.Time: RFC 3339 in seconds, null when zero, read into the local zone.
type Time struct {
	time.Time `protobuf:"-"`
}

// MarshalJSON writes null for the zero time, as metav1.Time does.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// UnmarshalJSON reads null as the zero time and keeps the local zone, as metav1.Time does.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339, str)
	if err != nil {
		return err
	}
	t.Time = parsed.Local()
	return nil
}

// MicroTime is metav1.MicroTime: RFC 3339 with microseconds, null when zero.
type MicroTime struct {
	time.Time `protobuf:"-"`
}

// RFC3339Micro is metav1's layout for MicroTime.
const RFC3339Micro = "2006-01-02T15:04:05.000000Z07:00"

// MarshalJSON writes null for the zero time, as metav1.MicroTime does.
func (t MicroTime) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(RFC3339Micro))
}

// UnmarshalJSON reads null as the zero time, as metav1.MicroTime does.
func (t *MicroTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339, str)
	if err != nil {
		return err
	}
	t.Time = parsed.Local()
	return nil
}

// TypeMeta is metav1.TypeMeta.
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// ObjectMeta is the part of metav1.ObjectMeta an Event's metadata has.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               types.UID         `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp Time              `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// ObjectReference is corev1.ObjectReference.
type ObjectReference struct {
	Kind            string    `json:"kind,omitempty"`
	Namespace       string    `json:"namespace,omitempty"`
	Name            string    `json:"name,omitempty"`
	UID             types.UID `json:"uid,omitempty"`
	APIVersion      string    `json:"apiVersion,omitempty"`
	ResourceVersion string    `json:"resourceVersion,omitempty"`
	FieldPath       string    `json:"fieldPath,omitempty"`
}

// OwnerReference is metav1.OwnerReference.
type OwnerReference struct {
	APIVersion         string    `json:"apiVersion"`
	Kind               string    `json:"kind"`
	Name               string    `json:"name"`
	UID                types.UID `json:"uid"`
	Controller         *bool     `json:"controller,omitempty"`
	BlockOwnerDeletion *bool     `json:"blockOwnerDeletion,omitempty"`
}

// EventSource is corev1.EventSource.
type EventSource struct {
	Component string `json:"component,omitempty"`
	Host      string `json:"host,omitempty"`
}

// EventSeries is corev1.EventSeries.
type EventSeries struct {
	Count            int32     `json:"count"`
	LastObservedTime MicroTime `json:"lastObservedTime"`
}

// Event is corev1.Event without related.
type Event struct {
	TypeMeta            `json:",inline"`
	ObjectMeta          `json:"metadata"`
	InvolvedObject      ObjectReference `json:"involvedObject"`
	Reason              string          `json:"reason,omitempty"`
	Message             string          `json:"message,omitempty"`
	Source              EventSource     `json:"source,omitempty"`
	FirstTimestamp      Time            `json:"firstTimestamp,omitempty"`
	LastTimestamp       Time            `json:"lastTimestamp,omitempty"`
	Count               int32           `json:"count,omitempty"`
	Type                string          `json:"type,omitempty"`
	EventTime           MicroTime       `json:"eventTime,omitempty"`
	Series              *EventSeries    `json:"series,omitempty"`
	Action              string          `json:"action,omitempty"`
	ReportingController string          `json:"reportingComponent"`
	ReportingInstance   string          `json:"reportingInstance"`
}
