package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/gin-gonic/gin"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/runtime/host"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// The trigger measurements (issue #5): the same load generator for fnhost and its baseline,
// an in-process HTTP client (or Pulsar client) with keep-alive connections.
const (
	trigWorkers       = 32    // concurrent callers of the load phase
	trigLatencyCalls  = 2_000 // sequential calls of one caller, per contender
	trigLatencyRounds = 5     // alternating between fnhost and its baseline
	trigWarmup        = 200
	trigHTTPTarget    = 0.5 // embedded req/s, fnhost ≥ 0.5× bare gin
	trigPulsarP50     = 1.3 // Pulsar sync p50, fnhost ≤ 1.3× bare request/reply
	trigPulsarRate    = 0.7 // Pulsar sync req/s, fnhost ≥ 0.7× bare request/reply
	trigStartTimeout  = time.Minute
)

func trigSection(title string) *section {
	return newSection(title, "p50", "p99", "req/s", "vs baseline", "target", "")
}

// triggerEmbedded: `fnhost dev` (embedded mode, the echo binary) against a bare gin handler
// that returns the request body. Each is a server process of its own, as a user deploys
// them, driven by the same load generator in this process.
func (b *bench) triggerEmbedded(ctx context.Context) (*section, error) {
	sec := trigSection(fmt.Sprintf("trigger HTTP invoke, embedded (%d B echo)", payloadSize))
	in := payload(0)

	// The baseline: gin in release mode, no middleware, on a loopback listener.
	b.progress("trigger embedded: starting the bare gin server…")
	baseURL, stopBase, err := b.startServer(ctx, "bare gin", exec.Command(b.ginBin))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	defer stopBase()
	base, closeBase, err := httpEcho(baseURL, in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	defer closeBase()

	fail := func(err error) (*section, error) {
		sec.note("fnhost dev: %v", err)
		lat, _, lerr := trigLatency(ctx, base)
		if lerr != nil {
			return nil, fmt.Errorf("%w: gin baseline: %w", errOperational, lerr)
		}
		rate, lerr := load(ctx, b.cfg.Duration, trigWorkers, base)
		if lerr != nil {
			return nil, fmt.Errorf("%w: gin baseline load: %w", errOperational, lerr)
		}
		sec.add("baseline: bare gin handler, 1 caller", latDur(lat[0][0]), latDur(lat[0][1]))
		sec.add(fmt.Sprintf("baseline: bare gin handler, %d workers", trigWorkers), "", "", count(rate))
		sec.add("fnhost dev echo, 1 caller", "failed")
		sec.add(fmt.Sprintf("fnhost dev echo, %d workers", trigWorkers), "", "", "failed", "", "≥"+ratio(trigHTTPTarget), "MISS")
		return sec, nil
	}

	// fnhost: the CLI, embedded, one echo function from the prebuilt binary.
	dir := filepath.Join(b.tmp, "trigger-manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	doc := fmt.Sprintf("tenant: public\nnamespace: default\nname: echo\ngo: %s\ninputs: [persistent://public/default/bench-%s-dev-echo-in]\n"+
		"parallelism: 1\nprocessingGuarantees: ATLEAST_ONCE\nsubscriptionPosition: Earliest\n", b.echoBin, b.runID)
	if err := os.WriteFile(filepath.Join(dir, "echo.yaml"), []byte(doc), 0o644); err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	b.progress("trigger embedded: starting fnhost dev with echo (at most %s)…", trigStartTimeout)
	cmd := exec.Command(b.fnhostBin, "dev", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--watch=false", "--manifests", dir, "--build-dir", filepath.Join(b.tmp, "trigger-build"),
		"--pulsar-url=") // embedded, whatever FNHOST_PULSAR_URL says
	cmd.Dir = b.root
	fnURL, stopFn, err := b.startServer(ctx, "fnhost dev", cmd)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return fail(err)
	}
	defer stopFn()
	fn, closeFn, err := httpEcho(fnURL, in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	defer closeFn()

	b.progress("trigger embedded: latency, %d calls each, alternating with bare gin…", trigLatencyCalls)
	lat, which, err := trigLatency(ctx, base, fn)
	if err != nil && which == 0 {
		return nil, fmt.Errorf("%w: gin baseline: %w", errOperational, err)
	} else if err != nil {
		return fail(err)
	}
	b.progress("trigger embedded: bare gin and fnhost dev, %d workers, %d alternating rounds of %s…", trigWorkers, trigLoadRounds, b.cfg.Duration)
	bRate, fRate, which, err := b.alternatingLoad(ctx, base, fn)
	if err != nil && which == 0 {
		return nil, fmt.Errorf("%w: gin baseline load: %w", errOperational, err)
	} else if err != nil {
		return fail(err)
	}
	sec.add("baseline: bare gin handler, 1 caller", latDur(lat[0][0]), latDur(lat[0][1]))
	sec.add(fmt.Sprintf("baseline: bare gin handler, %d workers", trigWorkers), "", "", count(bRate))
	sec.add("fnhost dev echo, 1 caller", latDur(lat[1][0]), latDur(lat[1][1]), "",
		ratio(float64(lat[1][0])/float64(lat[0][0]))+" p50")
	sec.add(fmt.Sprintf("fnhost dev echo, %d workers", trigWorkers), "", "", count(fRate),
		ratio(fRate/bRate), "≥"+ratio(trigHTTPTarget), verdict(fRate >= trigHTTPTarget*bRate))
	sec.note("each server is its own process: fnhost dev (trigger + embedded runtime + echo plugin) and the bare gin server; the load generator and the latency caller are in this process")
	sec.note("latency: %d sequential calls per contender after %d warm-up calls, in %d alternating rounds; req/s: %d workers on keep-alive connections, median of %d alternating rounds of %s",
		trigLatencyCalls, trigWarmup, trigLatencyRounds, trigWorkers, trigLoadRounds, b.cfg.Duration)
	return sec, nil
}

// triggerPulsar: the trigger over pulsarinvoke and the host runtime running echo, in this
// process, against a bare pulsar-client-go request/reply round trip.
func (b *bench) triggerPulsar(ctx context.Context) (*section, error) {
	sec := trigSection(fmt.Sprintf("trigger sync invoke through Pulsar (%d B echo)", payloadSize))
	in := payload(0)
	admin, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: b.cfg.AdminURL})
	if err != nil {
		return nil, fmt.Errorf("admin client for %s: %w", b.cfg.AdminURL, err)
	}
	topic := func(s string) string {
		return fmt.Sprintf("persistent://public/default/bench-%s-trig-%s", b.runID, s)
	}
	rrReq, rrReply, fnIn := topic("rr-req"), topic("rr-reply"), topic("fn-in")
	defer func() {
		for _, t := range []string{rrReq, rrReply, fnIn} {
			if err := deleteTopic(admin, t); err != nil {
				b.progress("warning: deleting %s: %v", t, err)
			}
		}
	}()

	b.progress("trigger pulsar: starting the bare request/reply loop…")
	rr, err := b.startRequestReply(ctx, rrReq, rrReply)
	if err != nil {
		return nil, fmt.Errorf("%w: bare request/reply: %w", errOperational, err)
	}
	defer rr.close()
	base := func(ctx context.Context) error {
		out, err := rr.call(ctx, in)
		if err != nil {
			return err
		}
		return checkEcho(in, out)
	}

	fail := func(err error) (*section, error) {
		sec.note("fnhost: %v", err)
		lat, _, lerr := trigLatency(ctx, base)
		if lerr != nil {
			return nil, fmt.Errorf("%w: bare request/reply: %w", errOperational, lerr)
		}
		rate, lerr := load(ctx, b.cfg.Duration, trigWorkers, base)
		if lerr != nil {
			return nil, fmt.Errorf("%w: bare request/reply load: %w", errOperational, lerr)
		}
		sec.add("baseline: bare pulsar-client-go request/reply, 1 caller", latDur(lat[0][0]), latDur(lat[0][1]))
		sec.add(fmt.Sprintf("baseline: bare pulsar-client-go request/reply, %d workers", trigWorkers), "", "", count(rate))
		sec.add("fnhost trigger → Pulsar → host runtime, 1 caller", "failed", "", "", "", "p50 ≤"+ratio(trigPulsarP50), "MISS")
		sec.add(fmt.Sprintf("fnhost trigger → Pulsar → host runtime, %d workers", trigWorkers), "", "", "failed", "", "≥"+ratio(trigPulsarRate), "MISS")
		return sec, nil
	}

	b.progress("trigger pulsar: starting the host runtime (echo) and the trigger…")
	name := fmt.Sprintf("bench-%s-trig-echo", b.runID)
	doc := fmt.Sprintf("tenant: public\nnamespace: default\nname: %s\ngo: %s\ninputs: [%s]\n"+
		"parallelism: 1\nprocessingGuarantees: ATLEAST_ONCE\nsubscriptionPosition: Earliest\n", name, b.echoBin, fnIn)
	m, err := manifest.Parse(filepath.Join(b.tmp, name+".yaml"), []byte(doc))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	startCtx, cancel := context.WithTimeout(ctx, trigStartTimeout)
	defer cancel()
	h, err := host.New(startCtx, host.Config{
		Functions:       []*manifest.Function{m},
		PulsarURL:       b.cfg.PulsarURL,
		BuildDir:        filepath.Join(b.tmp, "build"),
		ShutdownTimeout: 10 * time.Second,
		Logger:          b.log.With("component", "host"),
	})
	if err != nil {
		return fail(fmt.Errorf("starting the host runtime: %w", err))
	}
	hostCtx, stopHost := context.WithCancel(context.WithoutCancel(ctx))
	hostRun := goTask(func() error { return h.Run(hostCtx) })
	defer func() {
		stopHost()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := hostRun.wait(wctx); err != nil {
			b.progress("warning: host runtime: %v", err)
		}
	}()
	inv, err := pulsarinvoke.New(startCtx, pulsarinvoke.Config{
		ServiceURL: b.cfg.PulsarURL, Functions: []*manifest.Function{m}, Logger: b.log.With("component", "pulsarinvoke"),
	})
	if err != nil {
		return fail(fmt.Errorf("pulsarinvoke: %w", err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := inv.Close(cctx); err != nil {
			b.progress("warning: closing the Pulsar invoker: %v", err)
		}
	}()
	gin.SetMode(gin.ReleaseMode)
	trig, err := trigger.New(trigger.Config{Invoker: inv, Publisher: inv, Logger: b.log.With("component", "trigger"), MaxConcurrent: 4096})
	if err != nil {
		return fail(fmt.Errorf("trigger: %w", err))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%w: listening for the trigger: %w", errOperational, err)
	}
	trigCtx, stopTrig := context.WithCancel(context.WithoutCancel(ctx))
	trigRun := goTask(func() error { return trig.Serve(trigCtx, ln) })
	defer func() {
		stopTrig()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := trigRun.wait(wctx); err != nil {
			b.progress("warning: trigger: %v", err)
		}
	}()
	fn, closeFn, err := httpEcho("http://"+ln.Addr().String()+"/function/"+name, in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	defer closeFn()

	b.progress("trigger pulsar: latency, %d calls each, alternating with the bare round trip…", trigLatencyCalls)
	lat, which, err := trigLatency(ctx, base, fn)
	if err != nil && which == 0 {
		return nil, fmt.Errorf("%w: bare request/reply: %w", errOperational, err)
	} else if err != nil {
		return fail(err)
	}
	b.progress("trigger pulsar: bare request/reply and fnhost, %d workers, %d alternating rounds of %s…", trigWorkers, trigLoadRounds, b.cfg.Duration)
	bRate, fRate, which, err := b.alternatingLoad(ctx, base, fn)
	if err != nil && which == 0 {
		return nil, fmt.Errorf("%w: bare request/reply load: %w", errOperational, err)
	} else if err != nil {
		return fail(err)
	}
	p50 := float64(lat[1][0]) / float64(lat[0][0])
	sec.add("baseline: bare pulsar-client-go request/reply, 1 caller", latDur(lat[0][0]), latDur(lat[0][1]))
	sec.add(fmt.Sprintf("baseline: bare pulsar-client-go request/reply, %d workers", trigWorkers), "", "", count(bRate))
	sec.add("fnhost trigger → Pulsar → host runtime, 1 caller", latDur(lat[1][0]), latDur(lat[1][1]), "",
		ratio(p50)+" p50", "p50 ≤"+ratio(trigPulsarP50), verdict(p50 <= trigPulsarP50))
	sec.add(fmt.Sprintf("fnhost trigger → Pulsar → host runtime, %d workers", trigWorkers), "", "", count(fRate),
		ratio(fRate/bRate), "≥"+ratio(trigPulsarRate), verdict(fRate >= trigPulsarRate*bRate))
	sec.note("bare round trip: requests published with a reply-to and a correlation-id property (Send, which flushes the batch at once, as pulsarinvoke)," +
		" a consumer→producer echo loop replying to reply-to (LZ4, 1 ms batching, as the host runtime's reply-to producers), replies demultiplexed by correlation id")
	sec.note("trigger, host runtime, bare loop and load generator all run in this process; fnhost's echo has no output topic, only reply-to")
	sec.note("latency: %d sequential calls per contender after %d warm-up calls, in %d alternating rounds; req/s: %d workers, median of %d alternating rounds of %s",
		trigLatencyCalls, trigWarmup, trigLatencyRounds, trigWorkers, trigLoadRounds, b.cfg.Duration)
	return sec, nil
}

// httpEcho is a call that POSTs in to url with the lean load generator and checks that in
// comes back; closeConns closes its idle connections.
func httpEcho(url string, in []byte) (c call, closeConns func(), err error) {
	h, err := newLeanHTTP(url, in, 4*trigWorkers)
	if err != nil {
		return nil, nil, err
	}
	return h.echo(in), h.close, nil
}

// trigLatency warms each call up, then makes trigLatencyCalls sequential calls of each in
// trigLatencyRounds rounds that alternate between them, and returns each one's median and
// 99th percentile; on error, which is the index of the call that failed. Bounded to 2 minutes.
func trigLatency(ctx context.Context, calls ...call) (lat [][2]time.Duration, which int, err error) {
	return alternatingLatency(ctx, 2*time.Minute, trigWarmup, trigLatencyCalls, trigLatencyRounds, calls...)
}

// requestReply is the bare pulsar-client-go round trip: a requester publishing with reply-to
// and correlation-id properties, an echo loop, and a reply consumer that demultiplexes.
type requestReply struct {
	client    pulsar.Client
	reqProd   pulsar.Producer
	replyCons pulsar.Consumer
	echoCons  pulsar.Consumer
	replyTo   string
	cancel    context.CancelFunc
	loops     []*task

	next    atomic.Uint64
	mu      sync.Mutex
	pending map[string]chan []byte
}

const (
	rrReplyTo = "reply-to"
	rrCID     = "correlation-id"
)

func (b *bench) startRequestReply(ctx context.Context, reqTopic, replyTopic string) (_ *requestReply, err error) {
	client, err := b.pulsarClient()
	if err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rr := &requestReply{client: client, replyTo: replyTopic, cancel: cancel, pending: map[string]chan []byte{}}
	defer func() {
		if err != nil {
			rr.close()
		}
	}()
	rr.echoCons, err = client.Subscribe(pulsar.ConsumerOptions{
		Topic: reqTopic, SubscriptionName: "bench-echo", Type: pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", reqTopic, err)
	}
	rr.replyCons, err = client.Subscribe(pulsar.ConsumerOptions{
		Topic: replyTopic, SubscriptionName: "bench-caller", Type: pulsar.Exclusive,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 2000,
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", replyTopic, err)
	}
	rr.reqProd, err = client.CreateProducer(pulsar.ProducerOptions{
		Topic: reqTopic, SendTimeout: 3 * time.Second, BatchingMaxPublishDelay: time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("creating producer for %s: %w", reqTopic, err)
	}
	// The echo loop: replies to each request's reply-to, acking the request once sent.
	rr.loops = append(rr.loops, goTask(func() error {
		prods := map[string]pulsar.Producer{}
		defer func() {
			for _, p := range prods {
				p.Close()
			}
		}()
		for {
			msg, err := rr.echoCons.Receive(loopCtx)
			if err != nil {
				if loopCtx.Err() != nil {
					return nil
				}
				return fmt.Errorf("echo loop: receiving: %w", err)
			}
			props := msg.Properties()
			to := props[rrReplyTo]
			p, ok := prods[to]
			if !ok {
				p, err = client.CreateProducer(pulsar.ProducerOptions{
					Topic: to, CompressionType: pulsar.LZ4, BatchingMaxPublishDelay: invocation.ReplyBatchingDelay,
				})
				if err != nil {
					return fmt.Errorf("echo loop: creating producer for %s: %w", to, err)
				}
				prods[to] = p
			}
			p.SendAsync(loopCtx, &pulsar.ProducerMessage{Payload: msg.Payload(), Properties: map[string]string{rrCID: props[rrCID]}},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						rr.echoCons.Nack(msg)
						return
					}
					_ = rr.echoCons.Ack(msg)
				})
		}
	}))
	// The reply loop: hands each reply to its caller.
	rr.loops = append(rr.loops, goTask(func() error {
		for {
			msg, err := rr.replyCons.Receive(loopCtx)
			if err != nil {
				if loopCtx.Err() != nil {
					return nil
				}
				return fmt.Errorf("reply loop: receiving: %w", err)
			}
			_ = rr.replyCons.Ack(msg)
			cid := msg.Properties()[rrCID]
			rr.mu.Lock()
			ch := rr.pending[cid]
			delete(rr.pending, cid)
			rr.mu.Unlock()
			if ch != nil {
				ch <- msg.Payload()
			}
		}
	}))
	return rr, nil
}

// call publishes in and waits for its reply.
func (rr *requestReply) call(ctx context.Context, in []byte) ([]byte, error) {
	cid := strconv.FormatUint(rr.next.Add(1), 10)
	ch := make(chan []byte, 1)
	rr.mu.Lock()
	rr.pending[cid] = ch
	rr.mu.Unlock()
	forget := func() {
		rr.mu.Lock()
		delete(rr.pending, cid)
		rr.mu.Unlock()
	}
	if _, err := rr.reqProd.Send(ctx, &pulsar.ProducerMessage{
		Payload: in, Properties: map[string]string{rrReplyTo: rr.replyTo, rrCID: cid},
	}); err != nil {
		forget()
		return nil, fmt.Errorf("publishing: %w", err)
	}
	select {
	case out := <-ch:
		return out, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("waiting for the reply: %w", ctx.Err())
	}
}

func (rr *requestReply) close() {
	rr.cancel()
	for _, t := range rr.loops {
		<-t.done
	}
	if rr.reqProd != nil {
		rr.reqProd.Close()
	}
	if rr.replyCons != nil {
		rr.replyCons.Close()
	}
	if rr.echoCons != nil {
		rr.echoCons.Close()
	}
	rr.client.Close()
}

// urlWatch is `fnhost dev`'s stdout: it closes found at the printed curl line and keeps its
// URL.
// trigLoadRounds is how many alternating load rounds each trigger contender gets: one slow
// spell of this shared machine then moves a median, not the whole figure.
const trigLoadRounds = 3

// alternatingLoad loads base and fn with trigWorkers workers in trigLoadRounds alternating
// rounds of the configured duration, and returns the median rate of each. On an error, which
// says whose load failed (0 base, 1 fn).
func (b *bench) alternatingLoad(ctx context.Context, base, fn call) (bRate, fRate float64, which int, err error) {
	var rates [2][]float64
	for range trigLoadRounds {
		for i, c := range []call{base, fn} {
			r, err := load(ctx, b.cfg.Duration, trigWorkers, c)
			if err != nil {
				return 0, 0, i, err
			}
			rates[i] = append(rates[i], r)
		}
	}
	return median(rates[0]), median(rates[1]), 0, nil
}

// startServer starts cmd, a server that prints a curl line with its URL (as fnhost dev does),
// and waits for that line, bounded by trigStartTimeout. stop ends the process.
func (b *bench) startServer(ctx context.Context, name string, cmd *exec.Cmd) (url string, stop func(), err error) {
	stdout := &urlWatch{found: make(chan struct{})}
	stderr := &tail{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting %s: %w", name, err)
	}
	proc := goTask(func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %w; stderr: %s", name, err, stderr)
		}
		return nil
	})
	stop = func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), processShutdownTimeout+5*time.Second)
		defer cancel()
		if err := stopProcess(stopCtx, cmd, proc); err != nil {
			b.progress("warning: stopping %s: %v", name, err)
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, trigStartTimeout)
	defer cancel()
	select {
	case <-stdout.found:
		return stdout.url(), stop, nil
	case <-proc.done:
		return "", nil, fmt.Errorf("%s exited before serving: %w", name, proc.err)
	case <-startCtx.Done():
		stop()
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, fmt.Errorf("%s: no curl line within %s; stderr: %s", name, trigStartTimeout, stderr)
	}
}

type urlWatch struct {
	found chan struct{}

	mu   sync.Mutex
	buf  []byte
	addr string
}

func (w *urlWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.addr != "" {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	end := bytes.LastIndexByte(w.buf, '\n')
	if end < 0 {
		return len(p), nil // no complete line yet
	}
	sc := bufio.NewScanner(bytes.NewReader(w.buf[:end+1]))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "curl ") {
			continue
		}
		f := strings.Fields(line)
		if u := f[len(f)-1]; strings.HasPrefix(u, "http://") {
			w.addr = u
			w.buf = nil
			close(w.found)
			return len(p), nil
		}
	}
	w.buf = w.buf[end+1:] // keep the unfinished line only
	return len(p), nil
}

func (w *urlWatch) url() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// latDur formats a latency: in µs below 10 ms, in ms from there (10.3ms).
func latDur(d time.Duration) string {
	if d < 10*time.Millisecond {
		return micros(d)
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}
