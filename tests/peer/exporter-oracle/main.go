// Command exporter-oracle tells what kubernetes-event-exporter v1.7
// (github.com/resmoio/kubernetes-event-exporter, formerly github.com/opsgenie/...) does with a
// config file and a list of core/v1 Events: whether it starts with that config (and the fatal
// message if not), which receivers each event is handed to, and the bytes each receiver writes.
//
// Why this is not the exporter's own code: the Go module proxy refuses both
// github.com/resmoio/kubernetes-event-exporter and github.com/opsgenie/kubernetes-event-exporter
// ("403 Forbidden: This module version is not available", a final answer), and no other registry
// reachable here ships it. So this program imports the libraries that decide most of the
// exporter's observable behaviour, at the versions its go.mod pins:
//
//   - github.com/goccy/go-yaml v1.11.0: parses the config (unknown keys, `layout: {}`, null
//     values, type errors and their messages all come from it);
//   - k8s.io/api + k8s.io/apimachinery v0.26.7 and encoding/json: the default event body
//     (field order, omitempty, timestamp formats, HTML escaping);
//   - text/template + github.com/Masterminds/sprig/v3 v3.2.3: layouts, headers;
//   - Go's regexp: rule matching;
//   - github.com/rs/zerolog v1.28.0: which logLevel values are accepted.
//
// The glue between them (route walk, rule fields, config defaults and validation, which sink a
// receiver becomes, how each sink turns an event into bytes) is written here from a reading of the
// exporter's source. ../README.md lists each behaviour with the exporter file it comes from.
//
// Usage: exporter-oracle -config C.yaml -events E.jsonl [-labels L.json] [-now RFC3339]
// Output: one JSON document on stdout (see the result type). Exit 0 unless the inputs cannot be
// read (a config the exporter refuses is a normal answer: loaded=false).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	"github.com/goccy/go-yaml"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sjson "sigs.k8s.io/json"
)

// ---------------------------------------------------------------------------------------------
// Config types. Type names, field names, field types and the presence or absence of yaml tags
// follow the exporter (pkg/exporter/config.go, rule.go, route.go, pkg/sinks/*.go), because the
// YAML library's key names for untagged fields and its error messages depend on them.

// Config is pkg/exporter/config.go Config (v1.7 fields).
type Config struct {
	LogLevel           string               `yaml:"logLevel"`
	LogFormat          string               `yaml:"logFormat"`
	ThrottlePeriod     int64                `yaml:"throttlePeriod"`
	MaxEventAgeSeconds int64                `yaml:"maxEventAgeSeconds"`
	ClusterName        string               `yaml:"clusterName,omitempty"`
	Namespace          string               `yaml:"namespace"`
	LeaderElection     LeaderElectionConfig `yaml:"leaderElection"`
	Route              Route                `yaml:"route"`
	Receivers          []ReceiverConfig     `yaml:"receivers"`
	KubeQPS            float32              `yaml:"kubeQPS,omitempty"`
	KubeBurst          int                  `yaml:"kubeBurst,omitempty"`
	MetricsNamePrefix  string               `yaml:"metricsNamePrefix,omitempty"`
	OmitLookup         bool                 `yaml:"omitLookup,omitempty"`
	CacheSize          int                  `yaml:"cacheSize,omitempty"`
}

// LeaderElectionConfig is pkg/kube/leaderelection.go LeaderElectionConfig.
type LeaderElectionConfig struct {
	Enabled          bool   `yaml:"enabled"`
	LeaderElectionID string `yaml:"leaderElectionID"`
}

// Route is pkg/exporter/route.go Route: untagged, so the keys are the YAML library's defaults.
type Route struct {
	Drop   []Rule
	Match  []Rule
	Routes []Route
}

// Rule is pkg/exporter/rule.go Rule.
type Rule struct {
	Labels      map[string]string
	Annotations map[string]string
	Message     string
	APIVersion  string `yaml:"apiVersion"`
	Kind        string
	Namespace   string
	Reason      string
	Type        string
	MinCount    int32 `yaml:"minCount"`
	Component   string
	Host        string
	Receiver    string
}

// TLS is pkg/sinks/tls.go TLS.
type TLS struct {
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify"`
	ServerName         string `yaml:"serverName"`
	CaFile             string `yaml:"caFile"`
	KeyFile            string `yaml:"keyFile"`
	CertFile           string `yaml:"certFile"`
}

// Sinks whose bytes this oracle produces: the fields that matter for that.

type FileConfig struct {
	Path       string                 `yaml:"path"`
	Layout     map[string]interface{} `yaml:"layout"`
	MaxSize    int                    `yaml:"maxsize"`
	MaxAge     int                    `yaml:"maxage"`
	MaxBackups int                    `yaml:"maxbackups"`
	DeDot      bool                   `yaml:"deDot"`
}

type StdoutConfig struct {
	DeDot  bool                   `yaml:"deDot"`
	Layout map[string]interface{} `yaml:"layout"`
}

type PipeConfig struct {
	Path   string                 `yaml:"path"`
	DeDot  bool                   `yaml:"deDot"`
	Layout map[string]interface{} `yaml:"layout"`
}

type WebhookConfig struct {
	Endpoint string                 `yaml:"endpoint"`
	TLS      TLS                    `yaml:"tls"`
	Layout   map[string]interface{} `yaml:"layout"`
	Headers  map[string]string      `yaml:"headers"`
}

type KafkaConfig struct {
	Topic            string                 `yaml:"topic"`
	Brokers          []string               `yaml:"brokers"`
	Layout           map[string]interface{} `yaml:"layout"`
	ClientId         string                 `yaml:"clientId"`
	CompressionCodec string                 `yaml:"compressionCodec"`
	Version          string                 `yaml:"version"`
	KafkaEncode      map[string]interface{} `yaml:"avro"`
}

type ElasticsearchConfig struct {
	Hosts       []string               `yaml:"hosts"`
	UseEventID  bool                   `yaml:"useEventID"`
	DeDot       bool                   `yaml:"deDot"`
	Index       string                 `yaml:"index"`
	IndexFormat string                 `yaml:"indexFormat"`
	Type        string                 `yaml:"type"`
	TLS         TLS                    `yaml:"tls"`
	Layout      map[string]interface{} `yaml:"layout"`
}

type OpenSearchConfig ElasticsearchConfig

type LokiConfig struct {
	Layout       map[string]interface{} `yaml:"layout"`
	StreamLabels map[string]string      `yaml:"streamLabels"`
	TLS          TLS                    `yaml:"tls"`
	URL          string                 `yaml:"url"`
	Headers      map[string]string      `yaml:"headers"`
}

type SyslogConfig struct {
	Network string `yaml:"network"`
	Address string `yaml:"address"`
	Tag     string `yaml:"tag"`
}

type TeamsConfig struct {
	Endpoint string                 `yaml:"endpoint"`
	Layout   map[string]interface{} `yaml:"layout"`
	Headers  map[string]string      `yaml:"headers"`
}

// Sinks whose bytes this oracle does not produce: any mapping is accepted (the exporter's typed
// structs could refuse a wrongly typed field there; this oracle does not see that).
type (
	InMemoryConfig    map[string]interface{}
	SlackConfig       map[string]interface{}
	KinesisConfig     map[string]interface{}
	FirehoseConfig    map[string]interface{}
	OpsgenieConfig    map[string]interface{}
	SQSConfig         map[string]interface{}
	SNSConfig         map[string]interface{}
	PubsubConfig      map[string]interface{}
	OpsCenterConfig   map[string]interface{}
	BigQueryConfig    map[string]interface{}
	EventBridgeConfig map[string]interface{}
	PrometheusConfig  map[string]interface{}
)

// ReceiverConfig is pkg/sinks/receiver.go ReceiverConfig.
type ReceiverConfig struct {
	Name          string               `yaml:"name"`
	InMemory      *InMemoryConfig      `yaml:"inMemory"`
	Webhook       *WebhookConfig       `yaml:"webhook"`
	File          *FileConfig          `yaml:"file"`
	Syslog        *SyslogConfig        `yaml:"syslog"`
	Stdout        *StdoutConfig        `yaml:"stdout"`
	Elasticsearch *ElasticsearchConfig `yaml:"elasticsearch"`
	Kinesis       *KinesisConfig       `yaml:"kinesis"`
	Firehose      *FirehoseConfig      `yaml:"firehose"`
	OpenSearch    *OpenSearchConfig    `yaml:"opensearch"`
	Opsgenie      *OpsgenieConfig      `yaml:"opsgenie"`
	Loki          *LokiConfig          `yaml:"loki"`
	SQS           *SQSConfig           `yaml:"sqs"`
	SNS           *SNSConfig           `yaml:"sns"`
	Slack         *SlackConfig         `yaml:"slack"`
	Kafka         *KafkaConfig         `yaml:"kafka"`
	Pubsub        *PubsubConfig        `yaml:"pubsub"`
	Opscenter     *OpsCenterConfig     `yaml:"opscenter"`
	Teams         *TeamsConfig         `yaml:"teams"`
	BigQuery      *BigQueryConfig      `yaml:"bigquery"`
	EventBridge   *EventBridgeConfig   `yaml:"eventbridge"`
	Pipe          *PipeConfig          `yaml:"pipe"`
	Prometheus    *PrometheusConfig    `yaml:"prometheus"`
}

// sinkKind answers which sink the exporter builds for a receiver: the first set field in the order
// of pkg/sinks/receiver.go GetSink, or "" (GetSink's "unknown sink" error).
func (r *ReceiverConfig) sinkKind() string {
	order := []struct {
		set  bool
		kind string
	}{
		{r.InMemory != nil, "inMemory"}, {r.Pipe != nil, "pipe"}, {r.Webhook != nil, "webhook"},
		{r.File != nil, "file"}, {r.Syslog != nil, "syslog"}, {r.Stdout != nil, "stdout"},
		{r.Elasticsearch != nil, "elasticsearch"}, {r.Kinesis != nil, "kinesis"},
		{r.Firehose != nil, "firehose"}, {r.OpenSearch != nil, "opensearch"},
		{r.Opsgenie != nil, "opsgenie"}, {r.SQS != nil, "sqs"}, {r.SNS != nil, "sns"},
		{r.Slack != nil, "slack"}, {r.Kafka != nil, "kafka"}, {r.Pubsub != nil, "pubsub"},
		{r.Opscenter != nil, "opscenter"}, {r.Teams != nil, "teams"},
		{r.BigQuery != nil, "bigquery"}, {r.EventBridge != nil, "eventbridge"},
		{r.Loki != nil, "loki"}, {r.Prometheus != nil, "prometheus"},
	}
	for _, o := range order {
		if o.set {
			return o.kind
		}
	}
	return ""
}

// ---------------------------------------------------------------------------------------------
// The event the exporter routes: pkg/kube/event.go EnhancedEvent (v1.7 shape). Templates see this
// type, so its fields, embedding and methods must be the exporter's: `.InvolvedObject.Labels`,
// `.Labels` (the Event's own), `.GetTimestampMs`, `{{ . }}` (corev1.Event's String) all resolve
// through Go's embedding rules exactly as there.

type EnhancedEvent struct {
	corev1.Event   `json:",inline"`
	ClusterName    string                  `json:"clusterName"`
	InvolvedObject EnhancedObjectReference `json:"involvedObject"`
}

type EnhancedObjectReference struct {
	corev1.ObjectReference `json:",inline"`
	Labels                 map[string]string       `json:"labels,omitempty"`
	Annotations            map[string]string       `json:"annotations,omitempty"`
	OwnerReferences        []metav1.OwnerReference `json:"ownerReferences,omitempty"`
	Deleted                bool                    `json:"deleted"`
}

// DeDot: a copy whose label and annotation keys (the event's and the involved object's) have
// every "." replaced by "_".
func (e EnhancedEvent) DeDot() EnhancedEvent {
	out := e
	out.Labels = undot(e.Labels)
	out.Annotations = undot(e.Annotations)
	out.InvolvedObject.Labels = undot(e.InvolvedObject.Labels)
	out.InvolvedObject.Annotations = undot(e.InvolvedObject.Annotations)
	return out
}

func undot(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ReplaceAll(k, ".", "_")] = v
	}
	return out
}

// ToJSON is the default body: json.Marshal of the event, error ignored.
func (e *EnhancedEvent) ToJSON() []byte {
	b, _ := json.Marshal(e)
	return b
}

func (e *EnhancedEvent) eventTimestamp() time.Time {
	if !e.FirstTimestamp.Time.IsZero() {
		return e.FirstTimestamp.Time
	}
	return e.EventTime.Time
}

// GetTimestampMs: firstTimestamp (else eventTime) in Unix milliseconds.
func (e *EnhancedEvent) GetTimestampMs() int64 {
	return e.eventTimestamp().UnixNano() / int64(time.Millisecond)
}

// GetTimestampISO8601: the same instant formatted with a literal "Z" in the process's local zone.
func (e *EnhancedEvent) GetTimestampISO8601() string {
	return e.eventTimestamp().Format("2006-01-02T15:04:05.000Z")
}

// ---------------------------------------------------------------------------------------------
// Rules and routes (pkg/exporter/rule.go, route.go).

func regexMatches(pattern, value string) bool {
	ok, err := regexp.MatchString(pattern, value)
	return err == nil && ok // an invalid pattern never matches
}

func (r *Rule) matches(ev *EnhancedEvent) bool {
	pairs := [][2]string{
		{r.Message, ev.Message},
		{r.APIVersion, ev.InvolvedObject.APIVersion},
		{r.Kind, ev.InvolvedObject.Kind},
		{r.Namespace, ev.Namespace},
		{r.Reason, ev.Reason},
		{r.Type, ev.Type},
		{r.Component, ev.Source.Component},
		{r.Host, ev.Source.Host},
	}
	for _, p := range pairs {
		if p[0] != "" && !regexMatches(p[0], p[1]) {
			return false
		}
	}
	for key, pattern := range r.Labels {
		value, present := ev.InvolvedObject.Labels[key]
		if !present || !regexMatches(pattern, value) {
			return false
		}
	}
	for key, pattern := range r.Annotations {
		value, present := ev.InvolvedObject.Annotations[key]
		if !present || !regexMatches(pattern, value) {
			return false
		}
	}
	return ev.Count >= r.MinCount
}

// walk: a matching drop rule ends this route (and its sub-routes); every matching match rule that
// names a receiver hands the event to it; sub-routes run only when every match rule matched.
func (r *Route) walk(ev *EnhancedEvent, send func(receiver string)) {
	for i := range r.Drop {
		if r.Drop[i].matches(ev) {
			return
		}
	}
	everyMatch := true
	for i := range r.Match {
		rule := &r.Match[i]
		if !rule.matches(ev) {
			everyMatch = false
			continue
		}
		if rule.Receiver != "" {
			send(rule.Receiver)
		}
	}
	if !everyMatch {
		return
	}
	for i := range r.Routes {
		r.Routes[i].walk(ev, send)
	}
}

// ---------------------------------------------------------------------------------------------
// Layouts (pkg/sinks/tmpl.go).

func renderString(ev *EnhancedEvent, text string) (string, error) {
	t, err := template.New("template").Funcs(sprig.TxtFuncMap()).Parse(text)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, ev); err != nil {
		return "", err
	}
	return out.String(), nil
}

// renderValue: strings are templates; mappings and sequences are rendered element by element;
// every other YAML value (numbers, booleans, null) becomes nil, i.e. JSON null.
func renderValue(v interface{}, ev *EnhancedEvent) (interface{}, error) {
	switch x := v.(type) {
	case string:
		return renderString(ev, x)
	case map[string]interface{}:
		out := map[string]interface{}{}
		for k, item := range x {
			r, err := renderValue(item, ev)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case map[interface{}]interface{}:
		out := map[string]interface{}{}
		for k, item := range x {
			r, err := renderValue(item, ev)
			if err != nil {
				return nil, err
			}
			out[k.(string)] = r
		}
		return out, nil
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, item := range x {
			r, err := renderValue(item, ev)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return nil, nil
}

func renderLayout(layout map[string]interface{}, ev *EnhancedEvent) (map[string]interface{}, error) {
	out := map[string]interface{}{}
	for k, v := range layout {
		r, err := renderValue(v, ev)
		if err != nil {
			return nil, err
		}
		out[k] = r
	}
	return out, nil
}

// marshalBody: a non-nil layout (even an empty one) is rendered and marshalled; a nil layout
// gives the whole event.
func marshalBody(layout map[string]interface{}, ev *EnhancedEvent) ([]byte, error) {
	if layout == nil {
		return ev.ToJSON(), nil
	}
	r, err := renderLayout(layout, ev)
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// encodeBody is what the file, stdout and pipe sinks write: json.Encoder.Encode (a trailing
// newline) of the event or of the rendered layout, after DeDot when asked.
func encodeBody(layout map[string]interface{}, dedot bool, ev *EnhancedEvent) ([]byte, error) {
	if dedot {
		d := ev.DeDot()
		ev = &d
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if layout == nil {
		err := enc.Encode(ev)
		return buf.Bytes(), err
	}
	r, err := renderLayout(layout, ev)
	if err != nil {
		return nil, err
	}
	err = enc.Encode(r)
	return buf.Bytes(), err
}

// body is the bytes the receiver's sink sends for one event; nil bytes with a nil error means
// this oracle does not produce that sink's bytes.
func body(rc *ReceiverConfig, ev *EnhancedEvent) ([]byte, error) {
	switch rc.sinkKind() {
	case "file":
		return encodeBody(rc.File.Layout, rc.File.DeDot, ev)
	case "stdout":
		return encodeBody(rc.Stdout.Layout, rc.Stdout.DeDot, ev)
	case "pipe":
		return encodeBody(rc.Pipe.Layout, rc.Pipe.DeDot, ev)
	case "webhook":
		return marshalBody(rc.Webhook.Layout, ev)
	case "loki": // the log line inside the push request, not the request (it has a time.Now())
		return marshalBody(rc.Loki.Layout, ev)
	case "kafka":
		if rc.Kafka.Layout == nil {
			if id, _ := rc.Kafka.KafkaEncode["schemaID"].(string); id != "" {
				return nil, nil // Avro-encoded: not produced here
			}
		}
		return marshalBody(rc.Kafka.Layout, ev)
	case "elasticsearch":
		return dedotThenMarshal(rc.Elasticsearch.Layout, rc.Elasticsearch.DeDot, ev)
	case "opensearch":
		return dedotThenMarshal(rc.OpenSearch.Layout, rc.OpenSearch.DeDot, ev)
	case "syslog":
		return json.Marshal(ev)
	case "teams":
		return teamsBody(rc.Teams.Layout, ev)
	}
	return nil, nil
}

func dedotThenMarshal(layout map[string]interface{}, dedot bool, ev *EnhancedEvent) ([]byte, error) {
	if dedot {
		d := ev.DeDot()
		ev = &d
	}
	return marshalBody(layout, ev)
}

// teamsBody is the teams sink's request body: the layout (or event) JSON, read back as a map, and
// three of its keys formatted with %s.
func teamsBody(layout map[string]interface{}, ev *EnhancedEvent) ([]byte, error) {
	raw, err := marshalBody(layout, ev)
	if err != nil {
		return nil, err
	}
	var m map[string]interface{}
	_ = json.Unmarshal(raw, &m)
	text := fmt.Sprintf("Event: %s \nStatus: %s \nMetadata: %s", m["message"], m["reason"], m["metadata"])
	return json.Marshal(map[string]string{"summary": "event", "text": text})
}

// headers: the webhook and loki sinks render each header value as a template and fall back to the
// raw value when it does not render.
func headers(rc *ReceiverConfig, ev *EnhancedEvent) map[string]string {
	var hs map[string]string
	switch rc.sinkKind() {
	case "webhook":
		hs = rc.Webhook.Headers
	case "loki":
		hs = rc.Loki.Headers
	default:
		return nil
	}
	if hs == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range hs {
		if r, err := renderString(ev, v); err == nil {
			out[k] = r
		} else {
			out[k] = v
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// Loading (main.go, pkg/setup/setup.go, pkg/exporter/config.go, pkg/exporter/engine.go).

// parseConfig: yaml.Unmarshal; on error, the exporter's message: the first line of the YAML
// library's error, plus each source line marked "> ", plus a hint when that line holds "{{".
// The YAML library can panic on some inputs (v1.11.0: an empty value in a flow mapping, e.g.
// `{path: x, layout: }`); the exporter then dies at start, which is reported as a load error.
func parseConfig(b []byte) (cfg Config, err error) {
	defer func() {
		if p := recover(); p != nil {
			cfg, err = Config{}, fmt.Errorf("panic while parsing the config (the exporter crashes): %v", p)
		}
	}()
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		lines := strings.Split(err.Error(), "\n")
		msg := lines[0]
		for _, line := range lines {
			if strings.Contains(line, "> ") {
				msg += ": [ line " + line + "]"
				if strings.Contains(line, "{{") {
					msg += ": Need to wrap values with special characters in quotes"
				}
			}
		}
		return Config{}, errors.New("Cannot parse config to YAML: " + msg)
	}
	return cfg, nil
}

const (
	defaultCacheSize = 1024 // pkg/exporter/config.go DefaultCacheSize
	restDefaultQPS   = 5    // k8s.io/client-go/rest DefaultQPS
	restDefaultBurst = 10   // k8s.io/client-go/rest DefaultBurst
)

func (c *Config) setDefaults() {
	if c.CacheSize == 0 {
		c.CacheSize = defaultCacheSize
	}
	if c.KubeBurst == 0 {
		c.KubeBurst = restDefaultBurst
	}
	if c.KubeQPS == 0 {
		c.KubeQPS = restDefaultQPS
	}
}

func (c *Config) validate() error {
	switch {
	case c.ThrottlePeriod == 0 && c.MaxEventAgeSeconds == 0:
		c.MaxEventAgeSeconds = 5
	case c.ThrottlePeriod != 0 && c.MaxEventAgeSeconds != 0:
		return errors.New("validateMaxEventAgeSeconds failed")
	case c.ThrottlePeriod != 0:
		c.MaxEventAgeSeconds = c.ThrottlePeriod
	}
	if c.MetricsNamePrefix != "" {
		ok, err := regexp.MatchString("^[a-zA-Z][a-zA-Z0-9_:]*_$", c.MetricsNamePrefix)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("validateMetricsNamePrefix failed")
		}
	}
	return nil
}

// load runs the start-up steps of the exporter's main in order and returns the fatal message of
// the first one that fails.
func load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config file: %w", err)
	}
	raw = []byte(os.ExpandEnv(string(raw)))
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, err
	}
	if cfg.LogLevel != "" {
		if _, err := zerolog.ParseLevel(cfg.LogLevel); err != nil {
			return nil, fmt.Errorf("Invalid log level: %w (level=%s)", err, cfg.LogLevel)
		}
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "" && cfg.LogFormat != "pretty" {
		return nil, fmt.Errorf("Unknown log format (log_format=%s)", cfg.LogFormat)
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config validation failed: %w", err)
	}
	for i := range cfg.Receivers {
		rc := &cfg.Receivers[i]
		if rc.sinkKind() == "" {
			return nil, fmt.Errorf("Cannot initialize sink: unknown sink (name=%s)", rc.Name)
		}
		if err := checkTLSFiles(rc); err != nil {
			return nil, fmt.Errorf("Cannot initialize sink: failed to setup TLS: %w (name=%s)", err, rc.Name)
		}
	}
	return &cfg, nil
}

// checkTLSFiles: the sinks that call setupTLS fail at start when a named CA or key pair cannot be
// read.
func checkTLSFiles(rc *ReceiverConfig) error {
	var t *TLS
	switch rc.sinkKind() {
	case "webhook":
		t = &rc.Webhook.TLS
	case "loki":
		t = &rc.Loki.TLS
	case "elasticsearch":
		t = &rc.Elasticsearch.TLS
	case "opensearch":
		t = &rc.OpenSearch.TLS
	default:
		return nil
	}
	if t.CaFile != "" {
		if _, err := os.ReadFile(t.CaFile); err != nil {
			return err
		}
	}
	if t.CertFile != "" && t.KeyFile != "" {
		for _, f := range []string{t.CertFile, t.KeyFile} {
			if _, err := os.ReadFile(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Events in, answer out.

type objectMeta struct {
	Labels          map[string]string       `json:"labels"`
	Annotations     map[string]string       `json:"annotations"`
	OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
	Deleted         bool                    `json:"deleted"`
}

type delivery struct {
	EventIndex int               `json:"event_index"`
	EventUID   string            `json:"event_uid"`
	Receiver   string            `json:"receiver"`
	Sink       string            `json:"sink"`
	Body       *string           `json:"body"`
	Headers    map[string]string `json:"headers,omitempty"`
	Error      string            `json:"error,omitempty"`
}

type skipped struct {
	EventIndex int    `json:"event_index"`
	EventUID   string `json:"event_uid"`
	Receiver   string `json:"receiver,omitempty"`
	Reason     string `json:"reason"`
}

type receiverInfo struct {
	Name string `json:"name"`
	Sink string `json:"sink"`
}

type result struct {
	Loaded     bool                   `json:"loaded"`
	Error      string                 `json:"error"`
	Effective  map[string]interface{} `json:"effective,omitempty"`
	Receivers  []receiverInfo         `json:"receivers"`
	Deliveries []delivery             `json:"deliveries"`
	Lost       []skipped              `json:"lost"`
	Discarded  []skipped              `json:"discarded"`
}

// readEvents: one JSON value per non-blank line, either a core/v1 Event or a watch event
// {"type": ADDED|MODIFIED|DELETED, "object": Event}. Decoded as the API machinery decodes (case
// sensitive).
func readEvents(path string) ([]corev1.Event, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var events []corev1.Event
	var kinds []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(line, &probe); err != nil {
			return nil, nil, fmt.Errorf("events line %d: %w", n, err)
		}
		kind, obj := "ADDED", line
		if o, ok := probe["object"]; ok {
			obj = o
			if err := json.Unmarshal(probe["type"], &kind); err != nil {
				return nil, nil, fmt.Errorf("events line %d: watch event type: %w", n, err)
			}
		}
		var ev corev1.Event
		if err := k8sjson.UnmarshalCaseSensitivePreserveInts(obj, &ev); err != nil {
			return nil, nil, fmt.Errorf("events line %d: %w", n, err)
		}
		events = append(events, ev)
		kinds = append(kinds, kind)
	}
	return events, kinds, sc.Err()
}

func lookupMeta(metas map[string]objectMeta, ref *corev1.ObjectReference) (objectMeta, bool) {
	if m, ok := metas[ref.Kind+"/"+ref.Namespace+"/"+ref.Name]; ok {
		return m, true
	}
	if ref.Namespace == "" {
		m, ok := metas[ref.Kind+"/"+ref.Name]
		return m, ok
	}
	return objectMeta{}, false
}

func main() {
	configPath := flag.String("config", "", "exporter config file")
	eventsPath := flag.String("events", "", "JSON lines: core/v1 Events or watch events")
	labelsPath := flag.String("labels", "", `JSON {"Kind/namespace/name": {"labels", "annotations", "ownerReferences", "deleted"}}`)
	nowFlag := flag.String("now", "", "RFC3339 time to judge maxEventAgeSeconds against (default: no age check)")
	flag.Parse()
	if *configPath == "" || *eventsPath == "" {
		fmt.Fprintln(os.Stderr, "usage: exporter-oracle -config C.yaml -events E.jsonl [-labels L.json] [-now RFC3339]")
		os.Exit(2)
	}
	if err := run(*configPath, *eventsPath, *labelsPath, *nowFlag); err != nil {
		fmt.Fprintln(os.Stderr, "exporter-oracle:", err)
		os.Exit(2)
	}
}

func run(configPath, eventsPath, labelsPath, nowText string) error {
	events, kinds, err := readEvents(eventsPath)
	if err != nil {
		return err
	}
	metas := map[string]objectMeta{}
	if labelsPath != "" {
		raw, err := os.ReadFile(labelsPath)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &metas); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
	}
	var now time.Time
	if nowText != "" {
		if now, err = time.Parse(time.RFC3339Nano, nowText); err != nil {
			return fmt.Errorf("-now: %w", err)
		}
	}

	res := result{Receivers: []receiverInfo{}, Deliveries: []delivery{}, Lost: []skipped{}, Discarded: []skipped{}}
	cfg, err := load(configPath)
	if err != nil {
		res.Error = err.Error()
		return emit(res)
	}
	res.Loaded = true
	res.Effective = map[string]interface{}{
		"logLevel": cfg.LogLevel, "logFormat": cfg.LogFormat, "throttlePeriod": cfg.ThrottlePeriod,
		"maxEventAgeSeconds": cfg.MaxEventAgeSeconds, "clusterName": cfg.ClusterName,
		"namespace": cfg.Namespace, "leaderElection": map[string]interface{}{
			"enabled": cfg.LeaderElection.Enabled, "leaderElectionID": cfg.LeaderElection.LeaderElectionID,
		},
		"kubeQPS": cfg.KubeQPS, "kubeBurst": cfg.KubeBurst, "metricsNamePrefix": cfg.MetricsNamePrefix,
		"omitLookup": cfg.OmitLookup, "cacheSize": cfg.CacheSize,
	}
	// Register: a later receiver with the same name replaces the earlier one.
	registry := map[string]*ReceiverConfig{}
	for i := range cfg.Receivers {
		rc := &cfg.Receivers[i]
		res.Receivers = append(res.Receivers, receiverInfo{Name: rc.Name, Sink: rc.sinkKind()})
		registry[rc.Name] = rc
	}

	maxAge := time.Duration(cfg.MaxEventAgeSeconds) * time.Second
	for i := range events {
		raw := &events[i]
		uid := string(raw.UID)
		if kinds[i] != "ADDED" {
			res.Discarded = append(res.Discarded, skipped{EventIndex: i, EventUID: uid,
				Reason: "watch " + kinds[i] + " (only ADDED events are handled)"})
			continue
		}
		if !now.IsZero() {
			stamp := raw.LastTimestamp.Time
			if stamp.IsZero() {
				stamp = raw.EventTime.Time
			}
			if now.Sub(stamp) > maxAge {
				res.Discarded = append(res.Discarded, skipped{EventIndex: i, EventUID: uid,
					Reason: "older than maxEventAgeSeconds"})
				continue
			}
		}
		ev := &EnhancedEvent{Event: *raw.DeepCopy()}
		ev.Event.ManagedFields = nil
		ev.InvolvedObject.ObjectReference = *raw.InvolvedObject.DeepCopy()
		if !cfg.OmitLookup {
			if m, ok := lookupMeta(metas, &raw.InvolvedObject); ok {
				ev.InvolvedObject.Labels = m.Labels
				ev.InvolvedObject.Annotations = m.Annotations
				ev.InvolvedObject.OwnerReferences = m.OwnerReferences
				ev.InvolvedObject.Deleted = m.Deleted
			}
		}
		if cfg.ClusterName != "" {
			ev.ClusterName = cfg.ClusterName
		}
		cfg.Route.walk(ev, func(name string) {
			rc, ok := registry[name]
			if !ok {
				res.Lost = append(res.Lost, skipped{EventIndex: i, EventUID: uid, Receiver: name,
					Reason: "no receiver with that name"})
				return
			}
			d := delivery{EventIndex: i, EventUID: uid, Receiver: name, Sink: rc.sinkKind()}
			b, err := body(rc, ev)
			if err != nil {
				d.Error = err.Error()
			} else if b != nil {
				s := string(b)
				d.Body = &s
			}
			d.Headers = headers(rc, ev)
			res.Deliveries = append(res.Deliveries, d)
		})
	}
	return emit(res)
}

func emit(res result) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(res)
}
