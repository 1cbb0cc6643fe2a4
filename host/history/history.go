// Package history keeps the recent past of every VM in memory: its size and
// usage at each control-loop pass, the scaler's decisions and the VM's
// migrations, for the host's web page and GET /v1/history. It has no clock
// of its own: every record carries its time, and age is measured from the
// newest record, so replays and tests are deterministic.
package history

import (
	"sort"
	"sync"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// Limits bound what is kept. A zero field takes its default.
type Limits struct {
	// Points bounds, per VM, the points kept, and separately the decisions
	// and the migrations kept.
	Points int `json:"max_points"`
	// Age bounds how far back from the newest record anything is kept.
	Age time.Duration `json:"max_age_ns"`
}

// DefaultLimits keep an hour: 1800 points is one every 2 s.
var DefaultLimits = Limits{Points: 1800, Age: time.Hour}

// Point is a VM's size and usage at one instant.
type Point struct {
	At    time.Time   `json:"at"`
	Node  string      `json:"node"`
	Phase model.Phase `json:"phase"`
	// Size is what the VM has been given; Reserved what placement holds for
	// it (more than Size only while a growth is in flight).
	Size     model.Size `json:"size"`
	Reserved model.Size `json:"reserved"`
	// Usage is nil until the VM's guest has reported.
	Usage *Usage `json:"usage,omitempty"`
}

// Usage is the guest's latest report at a point.
type Usage struct {
	// What the guest has onlined of Size.
	OnlineVCPUMilli int64   `json:"online_vcpu_milli"`
	OnlineMemory    uint64  `json:"online_memory"`
	Load1           float64 `json:"load1"`
	MemoryUsed      uint64  `json:"memory_used"`
	// PSI "some" avg10 in percent; 0 on a guest kernel without PSI.
	CPUPressure    float64 `json:"cpu_pressure"`
	MemoryPressure float64 `json:"memory_pressure"`
}

// Migration is a migration's state as seen at At.
type Migration struct {
	At               time.Time `json:"at"`
	From             string    `json:"from"`
	To               string    `json:"to"`
	Reason           string    `json:"reason"`
	State            string    `json:"state"` // planned, running, completed, failed
	Error            string    `json:"error,omitempty"`
	ElapsedNanos     int64     `json:"elapsed_ns,omitempty"`
	DowntimeNanos    int64     `json:"downtime_ns,omitempty"`
	TransferredBytes uint64    `json:"transferred_bytes,omitempty"`
}

// Series is one VM's history, each list oldest first.
type Series struct {
	VM         string           `json:"vm"`
	Points     []Point          `json:"points"`
	Decisions  []model.Decision `json:"decisions"`
	Migrations []Migration      `json:"migrations"`
}

// Snapshot is what was recorded after a time, for every VM with a history.
type Snapshot struct {
	// Latest is the newest time recorded (absent before the first record):
	// pass it back as since to get only what followed.
	Latest time.Time `json:"latest,omitzero"`
	Limits Limits    `json:"limits"`
	// VMs are sorted by name; a VM with nothing after since is listed with
	// empty lists, so a reader can tell a quiet VM from a forgotten one.
	VMs []Series `json:"vms"`
}

// History is safe for concurrent use.
type History struct {
	limits Limits

	mu     sync.RWMutex
	latest time.Time
	vms    map[string]*Series
}

// New returns an empty History bounded by l.
func New(l Limits) *History {
	if l.Points <= 0 {
		l.Points = DefaultLimits.Points
	}
	if l.Age <= 0 {
		l.Age = DefaultLimits.Age
	}
	return &History{limits: l, vms: map[string]*Series{}}
}

// AddPoint records a VM's point. A point not newer than the VM's last is
// dropped: two passes that observed the fleet concurrently must not
// reorder a series, or a reader polling with since would miss the older.
func (h *History) AddPoint(vm string, p Point) {
	h.add(vm, p.At, func(s *Series) {
		s.Points = appendNewer(s.Points, p, func(p Point) time.Time { return p.At }, h.limits.Points)
	})
}

// AddDecision records a decision unless it is not newer than the VM's last
// one: the control loop keeps only a VM's last decision, so the same one is
// offered on every pass until the next is made.
func (h *History) AddDecision(vm string, d model.Decision) {
	h.add(vm, d.At, func(s *Series) {
		s.Decisions = appendNewer(s.Decisions, d, func(d model.Decision) time.Time { return d.At }, h.limits.Points)
	})
}

// AddMigration records a migration's state unless it is the VM's last
// recorded one unchanged (but for its time): a migration is observed on
// every pass while the loop keeps it.
func (h *History) AddMigration(vm string, m Migration) {
	h.add(vm, m.At, func(s *Series) {
		if n := len(s.Migrations); n > 0 {
			last := s.Migrations[n-1]
			last.At = m.At
			if last == m {
				return
			}
		}
		s.Migrations = appendNewer(s.Migrations, m, func(m Migration) time.Time { return m.At }, h.limits.Points)
	})
}

func (h *History) add(vm string, at time.Time, update func(*Series)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if at.Before(h.latest.Add(-h.limits.Age)) {
		return // already too old to keep
	}
	s := h.vms[vm]
	if s == nil {
		s = &Series{VM: vm}
		h.vms[vm] = s
	}
	update(s)
	if at.After(h.latest) {
		h.latest = at
		// Every VM ages, not only those still recorded: a removed VM's
		// history goes once it is older than the limit. Once per new
		// latest time, i.e. once per pass, as a pass records at one time.
		h.prune()
	}
}

// prune drops what is older than the age limit, and the VMs left with
// nothing.
func (h *History) prune() {
	cut := h.latest.Add(-h.limits.Age)
	for name, s := range h.vms {
		s.Points = dropBefore(s.Points, cut, func(p Point) time.Time { return p.At })
		s.Decisions = dropBefore(s.Decisions, cut, func(d model.Decision) time.Time { return d.At })
		s.Migrations = dropBefore(s.Migrations, cut, func(m Migration) time.Time { return m.At })
		if len(s.Points)+len(s.Decisions)+len(s.Migrations) == 0 {
			delete(h.vms, name)
		}
	}
}

// Since returns copies of what was recorded strictly after since (all of it
// for the zero time).
func (h *History) Since(since time.Time) Snapshot {
	h.mu.RLock()
	defer h.mu.RUnlock()
	snap := Snapshot{Latest: h.latest, Limits: h.limits, VMs: make([]Series, 0, len(h.vms))}
	for _, s := range h.vms {
		snap.VMs = append(snap.VMs, Series{
			VM:         s.VM,
			Points:     after(s.Points, since, func(p Point) time.Time { return p.At }),
			Decisions:  after(s.Decisions, since, func(d model.Decision) time.Time { return d.At }),
			Migrations: after(s.Migrations, since, func(m Migration) time.Time { return m.At }),
		})
	}
	sort.Slice(snap.VMs, func(i, j int) bool { return snap.VMs[i].VM < snap.VMs[j].VM })
	return snap
}

// appendNewer appends v unless it is not newer than the last element, then
// keeps the newest max elements.
func appendNewer[T any](list []T, v T, at func(T) time.Time, max int) []T {
	if n := len(list); n > 0 && !at(v).After(at(list[n-1])) {
		return list
	}
	list = append(list, v)
	if over := len(list) - max; over > 0 {
		// Copy rather than reslice, so the dropped elements' array is freed.
		list = append(list[:0:0], list[over:]...)
	}
	return list
}

func dropBefore[T any](list []T, cut time.Time, at func(T) time.Time) []T {
	i := sort.Search(len(list), func(i int) bool { return !at(list[i]).Before(cut) })
	if i == 0 {
		return list
	}
	return append(list[:0:0], list[i:]...)
}

// after copies the elements strictly after since; never nil, so that JSON
// has [] rather than null.
func after[T any](list []T, since time.Time, at func(T) time.Time) []T {
	i := sort.Search(len(list), func(i int) bool { return at(list[i]).After(since) })
	return append(make([]T, 0, len(list)-i), list[i:]...)
}
