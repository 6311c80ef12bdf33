package pulsarinvoke

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/fnhost/fnhost/trigger"
)

// DefaultStoreTopic is the topic of the invocation records unless StoreConfig.Topic says otherwise.
const DefaultStoreTopic = "persistent://public/default/fnhost-invocations"

var errStoreClosed = errors.New("pulsarinvoke: invocation store closed")

// StoreConfig configures a Store. Zero values take the defaults named on each field; NewStore
// calls setDefaults and then Validate.
type StoreConfig struct {
	// Client is the Pulsar client to use (required); the Store does not close it.
	Client pulsar.Client
	// Topic holds the records, one message per Put keyed by invocation id. Every trigger
	// replica that should answer for the others must use the same topic. A full persistent
	// topic name; default DefaultStoreTopic.
	Topic string
	// AdminURL is the Pulsar admin REST URL (http://127.0.0.1:8080). When set, NewStore sets
	// the topic's compaction threshold policy (CompactionThreshold), best
	// effort: a failure is logged at Warn. Empty: compaction must be configured on the
	// namespace or topic by the operator (pulsar-admin topicPolicies set-compaction-threshold).
	AdminURL string
	// HTTPClient calls the admin API. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// CompactionThreshold is the backlog, in bytes, beyond which the broker compacts the topic
	// (keeps only the latest record per id). Default 16 MiB.
	CompactionThreshold int64
	// SendTimeout bounds the broker's receipt of one record; Put fails after it. Default 3s.
	SendTimeout time.Duration
	// CacheSize and CacheTTL bound the cache of this store's own recent Puts that gives a Get
	// right after a Put the record before the table view has caught up: at most CacheSize
	// records, each for at most CacheTTL (an entry also goes as soon as the table view has the
	// record). Defaults 4096 and 1m.
	CacheSize int
	CacheTTL  time.Duration
	// Logger receives the store's logs and those of its table view. Default: discard.
	Logger *slog.Logger
}

func (c *StoreConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultStoreTopic
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.CompactionThreshold == 0 {
		c.CompactionThreshold = 16 << 20
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 3 * time.Second
	}
	if c.CacheSize == 0 {
		c.CacheSize = 4096
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field.
func (c *StoreConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("Client is nil"))
	}
	if _, err := topicPath(c.Topic); err != nil {
		errs = append(errs, err)
	}
	if c.CompactionThreshold < 0 {
		errs = append(errs, fmt.Errorf("CompactionThreshold is negative (%d)", c.CompactionThreshold))
	}
	if c.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("CacheSize is negative (%d)", c.CacheSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SendTimeout", c.SendTimeout}, {"CacheTTL", c.CacheTTL}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%s)", d.name, d.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pulsarinvoke: invalid store config: %w", err)
	}
	return nil
}

// topicPath turns persistent://tenant/namespace/topic into the admin API's
// persistent/tenant/namespace/topic. Only persistent topics can be compacted.
func topicPath(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, "persistent://")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", fmt.Errorf("Topic %q: want a full persistent topic name, persistent://tenant/namespace/topic", topic)
	}
	return "persistent/" + rest, nil
}

// Store is a trigger.InvocationStore in a compacted Pulsar topic read as a table view
// (DESIGN §5): every replica on the same topic answers for the records of all of them, and a
// restart loses none.
//
// Put sends the record as JSON keyed by invocation id and returns once the broker has it, so
// compaction keeps the latest record per id. Get reads the table view, which follows the
// topic and so is eventually consistent: a record another replica Put shows up a moment later.
// For its own Puts a Store reads its writes: it keeps each record it Puts in a small local
// cache, consulted before the table view, until the table view has delivered that very record
// (or CacheTTL passes, or CacheSize newer records push it out); a concurrent Get may see a
// record whose Put is still being sent. Waiting in Put for the table
// view instead would add a reader round trip to every accepted request; the cache costs none.
//
// Records are never deleted: compaction keeps the latest of each id (set a retention or
// expiry policy on the namespace to bound their number). Each record must fit in one Pulsar
// message (the broker's maxMessageSize, 5 MiB by default), which bounds the outputs a record
// can carry (trigger.Config.MaxOutputBytes, plus JSON and base64 overhead).
type Store struct {
	topic    string
	log      *slog.Logger
	producer pulsar.Producer
	view     pulsar.TableView
	cache    *recentCache

	closeOnce sync.Once
	closed    chan struct{} // closed when Close starts
	done      chan struct{} // closed when the producer and table view are closed
}

var _ trigger.InvocationStore = (*Store)(nil)

// NewStore creates the producer and the table view of cfg.Topic (reading the records already
// there) and, with cfg.AdminURL, sets the topic's compaction policy. The client's operation
// timeout bounds the creation of the producer and the table view; ctx bounds the admin calls.
func NewStore(ctx context.Context, cfg StoreConfig) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("topic", cfg.Topic)
	// The producer first: it creates the topic, which the admin calls need.
	producer, err := cfg.Client.CreateProducer(pulsar.ProducerOptions{
		Topic: cfg.Topic,
		// The table view's schema: a producer without one and a bytes-schema reader are
		// incompatible to the broker (empty BYTES against NONE).
		Schema:                  pulsar.NewBytesSchema(nil),
		SendTimeout:             cfg.SendTimeout,
		BatchingMaxPublishDelay: time.Millisecond, // concurrent Puts share batches; a lone one waits 1ms
	})
	if err != nil {
		return nil, fmt.Errorf("%w: creating the invocation record producer for %s: %w", trigger.ErrUnavailable, cfg.Topic, err)
	}
	if cfg.AdminURL != "" {
		if err := setCompaction(ctx, cfg); err != nil {
			log.Warn("invocation record topic not set up for compaction; configure it with pulsar-admin", "err", err)
		}
	}
	view, err := cfg.Client.CreateTableView(pulsar.TableViewOptions{
		Topic: cfg.Topic,
		// The table view needs both: without a schema it cannot decode, and without the value
		// type it panics. Values are the raw JSON; Get decodes them.
		Schema:          pulsar.NewBytesSchema(nil),
		SchemaValueType: reflect.TypeFor[[]byte](),
		Logger:          pulsarlog.NewLoggerWithSlog(cfg.Logger),
	})
	if err != nil {
		producer.Close()
		return nil, fmt.Errorf("%w: creating the invocation record table view of %s: %w", trigger.ErrUnavailable, cfg.Topic, err)
	}
	s := &Store{topic: cfg.Topic, log: log, producer: producer, view: view,
		cache: newRecentCache(cfg.CacheSize, cfg.CacheTTL), closed: make(chan struct{}), done: make(chan struct{})}
	// The listener runs in the table view's reader goroutine, under the view's lock: it only
	// takes the cache's lock, and the store never calls the view while holding that lock.
	if err := view.ForEachAndListen(s.seen); err != nil {
		view.Close()
		producer.Close()
		return nil, fmt.Errorf("listening to the invocation record table view of %s: %w", cfg.Topic, err)
	}
	log.Info("invocation store ready", "records", view.Size())
	return s, nil
}

// seen is the table view's listener: once the view holds the record this store Put, the
// cached copy is no longer needed (and must go, so that later updates by others show).
func (s *Store) seen(id string, v any) error {
	b, _ := v.([]byte) // a deleted key (empty payload) arrives as nil
	s.cache.removeIfEqual(id, b)
	return nil
}

// Put stores inv under inv.ID, replacing the previous record of that id, and returns once the
// broker has persisted it (or the send timeout passes: then an error wrapping
// trigger.ErrUnavailable). Safe for concurrent use.
func (s *Store) Put(ctx context.Context, inv trigger.Invocation) error {
	if s.isClosed() {
		return errStoreClosed
	}
	b, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("encoding invocation %s: %w", inv.ID, err)
	}
	// Cached before the send, so that the table view, which may deliver the record before
	// Send returns, finds it and drops it.
	e := s.cache.put(inv.ID, b)
	if _, err := s.producer.Send(ctx, &pulsar.ProducerMessage{Key: inv.ID, Payload: b}); err != nil {
		s.cache.remove(inv.ID, e)
		return fmt.Errorf("%w: storing invocation %s in %s: %w", trigger.ErrUnavailable, inv.ID, s.topic, err)
	}
	return nil
}

// Get returns the record id: this store's own recent Put if the table view does not have it
// yet, else the table view's. An id that neither has is trigger.ErrInvocationNotFound. It
// does not block. Safe for concurrent use.
func (s *Store) Get(_ context.Context, id string) (trigger.Invocation, error) {
	if s.isClosed() {
		return trigger.Invocation{}, errStoreClosed
	}
	b, ok := s.cache.get(id)
	if !ok {
		b, _ = s.view.Get(id).([]byte) // nil when absent
	}
	if len(b) == 0 {
		return trigger.Invocation{}, fmt.Errorf("invocation %s: %w", id, trigger.ErrInvocationNotFound)
	}
	var inv trigger.Invocation
	if err := json.Unmarshal(b, &inv); err != nil {
		return trigger.Invocation{}, fmt.Errorf("decoding invocation %s from %s: %w", id, s.topic, err)
	}
	return inv, nil
}

// Close closes the table view and the producer (which flushes nothing: Put is synchronous),
// waiting at most until ctx ends. It is idempotent and safe to call concurrently; Put and Get
// fail once it has started.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.closed)
		go func() { // ends by itself: both closes are bounded by the client's timeouts
			defer close(s.done)
			s.view.Close()
			s.producer.Close()
		}()
	})
	select {
	case <-s.done:
		return nil // pulsar's Close methods report nothing
	case <-ctx.Done():
		return fmt.Errorf("closing the invocation store of %s: %w", s.topic, ctx.Err())
	}
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// setCompaction sets the topic's compaction threshold. The broker (Pulsar 4.0) then creates
// its __compaction cursor, which also keeps records not yet compacted from being dropped when
// a ledger rolls over in a namespace without retention (table views create no cursor).
// Compaction is not triggered here: on an empty topic, Pulsar 4.0.8 records the skipped
// compaction as failed, and that makes the topic undeletable.
func setCompaction(ctx context.Context, cfg StoreConfig) error {
	path, err := topicPath(cfg.Topic)
	if err != nil {
		return err
	}
	url := strings.TrimRight(cfg.AdminURL, "/") + "/admin/v2/" + path + "/compactionThreshold"
	return adminCall(ctx, cfg.HTTPClient, http.MethodPost, url, strconv.FormatInt(cfg.CompactionThreshold, 10))
}

func adminCall(ctx context.Context, hc *http.Client, method, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// recentCache holds the encoded records this store Put recently, bounded in count (the
// oldest Put goes first) and age.
type recentCache struct {
	limit int
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	byID  map[string]*list.Element // of *cacheEntry
	order *list.List               // by Put, oldest first
}

type cacheEntry struct {
	id      string
	rec     []byte
	expires time.Time
}

func newRecentCache(limit int, ttl time.Duration) *recentCache {
	return &recentCache{limit: limit, ttl: ttl, now: time.Now, byID: map[string]*list.Element{}, order: list.New()}
}

// put caches rec as the latest record of id and returns its entry, for remove.
func (c *recentCache) put(id string, rec []byte) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	e := &cacheEntry{id: id, rec: rec, expires: now.Add(c.ttl)}
	if el, ok := c.byID[id]; ok {
		c.order.Remove(el)
	}
	c.byID[id] = c.order.PushBack(e)
	for c.order.Len() > c.limit {
		c.drop(c.order.Front())
	}
	for el := c.order.Front(); el != nil && !now.Before(el.Value.(*cacheEntry).expires); el = c.order.Front() {
		c.drop(el)
	}
	return e
}

// get returns the cached record of id, if any and not expired.
func (c *recentCache) get(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	if e := el.Value.(*cacheEntry); c.now().Before(e.expires) {
		return e.rec, true
	}
	c.drop(el)
	return nil, false
}

// remove drops entry e of id, unless a later put replaced it.
func (c *recentCache) remove(id string, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok && el.Value.(*cacheEntry) == e {
		c.drop(el)
	}
}

// removeIfEqual drops the record of id if it is rec: the table view now has it.
func (c *recentCache) removeIfEqual(id string, rec []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok && bytes.Equal(el.Value.(*cacheEntry).rec, rec) {
		c.drop(el)
	}
}

func (c *recentCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *recentCache) drop(el *list.Element) {
	delete(c.byID, el.Value.(*cacheEntry).id)
	c.order.Remove(el)
}
