package trigger

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// ErrInvocationNotFound is returned by InvocationStore.Get for an unknown or expired id.
var ErrInvocationNotFound = errors.New("trigger: invocation not found")

// Status is the state of an async invocation.
type Status string

// The states of an invocation; accepted → running → one of the final three.
const (
	StatusAccepted  Status = "accepted"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed_out"
)

// Final reports whether the invocation has ended.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusTimedOut
}

// Invocation is the record of one async invocation, as GET /v1/invocations/{id} returns it
// and as the callback receives it.
type Invocation struct {
	ID       string   `json:"id"`
	Function Function `json:"function"`
	Status   Status   `json:"status"`
	// Outputs are the outputs so far (all of them once Status is final), at most
	// Config.MaxOutputBytes of payload: those of the function's last attempt only. Their Seq is
	// their event id, as GET /v1/invocations/{id}/events numbers them: a retry's outputs go on
	// after the ids of the failed attempt's.
	Outputs []Output `json:"outputs"`
	// Attempt is the attempt that ended the invocation (0 unless the function was retried).
	Attempt int `json:"attempt,omitempty"`
	// Error is set when Status is failed or timed_out.
	Error      *ErrorInfo `json:"error,omitempty"`
	AcceptedAt time.Time  `json:"accepted_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Deadline   time.Time  `json:"deadline"`
}

// ErrorInfo is a failure as callers see it: the code and message of the JSON error body.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// InvocationStore keeps async invocation records. The in-memory MemoryStore is the default;
// a Pulsar table-view store (any trigger replica can answer) comes later. Implementations are
// safe for concurrent use.
type InvocationStore interface {
	// Put creates or replaces the record inv.ID. The store may keep inv.Outputs; the caller
	// does not modify it afterwards.
	Put(ctx context.Context, inv Invocation) error
	// Get returns the record id, or an error wrapping ErrInvocationNotFound.
	Get(ctx context.Context, id string) (Invocation, error)
}

// MemoryStore is an InvocationStore in memory, bounded in count and age: it keeps at most
// limit records (dropping the least recently created) for ttl after their last Put.
type MemoryStore struct {
	limit int
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	byID  map[string]*list.Element // of *memoryEntry
	order *list.List               // creation order, oldest first
}

type memoryEntry struct {
	inv     Invocation
	expires time.Time
}

var _ InvocationStore = (*MemoryStore)(nil)

// NewMemoryStore returns a store of at most limit records kept ttl after their last update.
func NewMemoryStore(limit int, ttl time.Duration) *MemoryStore {
	return &MemoryStore{limit: max(limit, 1), ttl: ttl, now: time.Now,
		byID: map[string]*list.Element{}, order: list.New()}
}

// Put stores inv. It never fails.
func (m *MemoryStore) Put(_ context.Context, inv Invocation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e := &memoryEntry{inv: inv, expires: now.Add(m.ttl)}
	if el, ok := m.byID[inv.ID]; ok {
		el.Value = e
		return nil
	}
	m.byID[inv.ID] = m.order.PushBack(e)
	for m.order.Len() > m.limit {
		m.remove(m.order.Front())
	}
	// Drop expired records from the old end; those updated later wait for their turn or Get.
	for el := m.order.Front(); el != nil && now.After(el.Value.(*memoryEntry).expires); el = m.order.Front() {
		m.remove(el)
	}
	return nil
}

// Get returns the record id.
func (m *MemoryStore) Get(_ context.Context, id string) (Invocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byID[id]
	if !ok {
		return Invocation{}, ErrInvocationNotFound
	}
	e := el.Value.(*memoryEntry)
	if m.now().After(e.expires) {
		m.remove(el)
		return Invocation{}, ErrInvocationNotFound
	}
	return e.inv, nil
}

// Len returns the number of records held (expired ones included until they are dropped).
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

func (m *MemoryStore) remove(el *list.Element) {
	delete(m.byID, el.Value.(*memoryEntry).inv.ID)
	m.order.Remove(el)
}
