// Package types mirrors k8s.io/apimachinery/pkg/types: only UID, so that templates see the
// same named string type kubernetes-event-exporter's events carry.
package types

// UID is a Kubernetes object's unique id (a named string type, not a plain string).
type UID string
