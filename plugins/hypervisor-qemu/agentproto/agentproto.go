// Package agentproto is the wire protocol between the QEMU plugin and the
// guest agent, over a virtio-serial port: one JSON object per line, each
// with a "type". The agent speaks first (hello), then streams metrics and
// events; the plugin sends requests with an id, and the agent answers each
// with a reply carrying the same id.
//
// Every message is validated on receipt (Validate): a malformed line is an
// error naming the field, never a silent zero.
package agentproto

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Version is the protocol version the agent announces in Hello.
const Version = 1

// PortName is the virtio-serial port's name (/dev/virtio-ports/PortName).
const PortName = "org.vertigo.agent.0"

// Message types.
const (
	TypeHello   = "hello"
	TypeMetrics = "metrics"
	TypeEvent   = "event"
	TypeRequest = "request"
	TypeReply   = "reply"
)

// Request operations.
const (
	// OpSetCPUs onlines or offlines vCPUs so that exactly CPUs are online
	// (hotplugged ones included). Offlining is how vCPUs scale down. The
	// target is remembered: vCPUs hotplugged later are onlined only up to
	// it, so the plugin sets the target first, then hotplugs what is
	// missing. The reply's cpus is the count online now.
	OpSetCPUs = "set_cpus"
	// OpDownscale asks the guest's consent to shrink to CPUs/MemoryBytes
	// (MemoryBytes 0: memory stays). The reply is ok, or not ok with the
	// reason in Error.
	OpDownscale = "downscale"
	// OpLoad generates load for DurationNs: CPUWorkers busy threads and
	// MemoryBytes allocated and touched. It replaces the running load; one
	// with neither workers nor memory just stops it.
	OpLoad = "load"
	// OpPing answers at once (liveness, round-trip time).
	OpPing = "ping"
	// OpHello asks for a hello now, before the reply. The agent greets each
	// host connection it notices, but a host that reconnects quickly (a
	// restarted plugin) may go unnoticed: the guest kernel can see the
	// disconnect and the connect as one state, so a new host asks.
	OpHello = "hello"
	// OpShutdown powers the guest off. The guest's init does not handle
	// ACPI's power button, so this is how a stop is graceful; the reply
	// may not arrive before the guest is gone.
	OpShutdown = "shutdown"
)

// Event names.
const (
	EventMemoryPressure = "memory_pressure"
	// EventCPUPressure: tasks waited for a CPU for much of the last few
	// hundred milliseconds; the host decides at once rather than waiting
	// for PSI's 10-second average to climb.
	EventCPUPressure  = "cpu_pressure"
	EventCPUOnline    = "cpu_online"
	EventMemoryOnline = "memory_online"
	// EventProtocolError reports a line from the plugin the agent could not
	// answer with a reply (no usable id); Error says what was wrong.
	EventProtocolError = "protocol_error"
)

// Message is one line. Fields are used by the types noted.
type Message struct {
	Type string `json:"type"`

	// hello
	Version     int    `json:"version,omitempty"`
	BootNanos   int64  `json:"boot_ns,omitempty"` // guest uptime at hello
	AgentName   string `json:"agent,omitempty"`
	KernelLabel string `json:"kernel,omitempty"`

	// metrics (also the state in a hello): guest wall time in ns.
	TUnixNano           int64   `json:"t,omitempty"`
	Load1               float64 `json:"load1,omitempty"`
	Load5               float64 `json:"load5,omitempty"`
	CPUPressureAvg10    float64 `json:"cpu_psi,omitempty"`
	MemoryPressureAvg10 float64 `json:"mem_psi,omitempty"`
	MemoryUsedBytes     uint64  `json:"mem_used,omitempty"`
	MemoryCachedBytes   uint64  `json:"mem_cached,omitempty"`
	MemoryTotalBytes    uint64  `json:"mem_total,omitempty"` // online memory
	OnlineCPUs          int     `json:"cpus,omitempty"`
	UptimeNanos         int64   `json:"uptime_ns,omitempty"`
	// DB is what the agent reads of Postgres; absent when none runs.
	DB *DBStats `json:"db,omitempty"`

	// event
	Event string `json:"event,omitempty"`

	// request / reply
	ID          uint64 `json:"id,omitempty"`
	Op          string `json:"op,omitempty"`
	CPUs        int    `json:"cpus_target,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	CPUWorkers  int    `json:"cpu_workers,omitempty"`
	DurationNs  int64  `json:"duration_ns,omitempty"`
	OK          bool   `json:"ok,omitempty"`
	Error       string `json:"error,omitempty"` // refusal reason or failure
}

// DBStats is the database's part of a metrics message.
type DBStats struct {
	// Client connections, and those of them running a statement.
	ActiveConnections uint32 `json:"active"`
	Connections       uint32 `json:"connections"`
	// WorkingSetBytes estimates the memory the database touched lately:
	// shared buffers and page cache.
	WorkingSetBytes uint64 `json:"working_set"`
}

// Validate checks a received message.
func (m *Message) Validate() error {
	switch m.Type {
	case TypeHello:
		if m.Version <= 0 {
			return errors.New("hello.version: must be > 0")
		}
	case TypeMetrics:
		if m.TUnixNano <= 0 {
			return errors.New("metrics.t: must be > 0")
		}
		if m.OnlineCPUs <= 0 {
			return errors.New("metrics.cpus: must be > 0")
		}
		if m.MemoryTotalBytes == 0 {
			return errors.New("metrics.mem_total: must be > 0")
		}
		if m.Load1 < 0 || m.Load5 < 0 || m.CPUPressureAvg10 < 0 || m.CPUPressureAvg10 > 100 || m.MemoryPressureAvg10 < 0 || m.MemoryPressureAvg10 > 100 {
			return errors.New("metrics: load must be >= 0 and pressure within 0..100")
		}
		if m.DB != nil && m.DB.ActiveConnections > m.DB.Connections {
			return fmt.Errorf("metrics.db.active: %d exceeds metrics.db.connections %d", m.DB.ActiveConnections, m.DB.Connections)
		}
	case TypeEvent:
		if m.Event == "" {
			return errors.New("event.event: must not be empty")
		}
		if m.TUnixNano <= 0 {
			return errors.New("event.t: must be > 0")
		}
	case TypeRequest:
		if m.ID == 0 {
			return errors.New("request.id: must be > 0")
		}
		switch m.Op {
		case OpSetCPUs, OpDownscale, OpLoad, OpPing, OpHello, OpShutdown:
		default:
			return fmt.Errorf("request.op: unknown %q", m.Op)
		}
	case TypeReply:
		if m.ID == 0 {
			return errors.New("reply.id: must be > 0")
		}
	default:
		return fmt.Errorf("type: unknown %q", m.Type)
	}
	return nil
}

// maxLine bounds one message, so a confused peer cannot make the reader
// buffer without limit.
const maxLine = 64 << 10

// Reader reads validated messages.
type Reader struct{ s *bufio.Scanner }

// NewReader reads lines from r.
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 4096), maxLine)
	return &Reader{s: s}
}

// Read returns the next message. A malformed line is returned as an error
// that names it; the reader can go on with the next line.
func (r *Reader) Read() (*Message, error) {
	if !r.s.Scan() {
		if err := r.s.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	line := r.s.Bytes()
	m := &Message{}
	if err := json.Unmarshal(line, m); err != nil {
		return nil, &MalformedError{Line: string(line), Err: err}
	}
	if err := m.Validate(); err != nil {
		return nil, &MalformedError{Line: string(line), Err: err}
	}
	return m, nil
}

// MalformedError is a line that is not a valid message.
type MalformedError struct {
	Line string
	Err  error
}

func (e *MalformedError) Error() string {
	line := e.Line
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return fmt.Sprintf("malformed agent message %q: %v", line, e.Err)
}

func (e *MalformedError) Unwrap() error { return e.Err }

// Writer writes messages, one per line; safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends one message.
func (w *Writer) Write(m *Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(append(b, '\n'))
	return err
}
