package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/runtime/host"
)

// task is a goroutine whose end is observable: done is closed when fn has returned, and err
// holds what it returned.
type task struct {
	done chan struct{}
	err  error
}

func goTask(fn func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = fn()
	}()
	return t
}

// wait waits for the task, bounded by ctx.
func (t *task) wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return fmt.Errorf("still running: %w", context.Cause(ctx))
	}
}

// startBareLoop is the baseline: in this process, a Shared consumer (receiver queue 1000)
// feeds a producer (batching, LZ4, as the runtime's), and each input is acked in its output's
// send callback.
func (b *bench) startBareLoop(ctx context.Context, f flow) (*running, error) {
	// A client of its own, as every other contender has.
	client, err := b.pulsarClient()
	if err != nil {
		return nil, err
	}
	cons, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic:                       f.in,
		SubscriptionName:            "bench-base",
		Type:                        pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize:           1000,
	})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("subscribing to %s: %w", f.in, err)
	}
	prod, err := client.CreateProducer(pulsar.ProducerOptions{
		Topic:                   f.out,
		CompressionType:         pulsar.LZ4,
		BatchingMaxPublishDelay: 10 * time.Millisecond,
	})
	if err != nil {
		cons.Close()
		client.Close()
		return nil, fmt.Errorf("creating producer for %s: %w", f.out, err)
	}
	loopCtx, cancel := context.WithCancel(ctx)
	var ackErrs atomic.Int64
	loop := goTask(func() error {
		for {
			msg, err := cons.Receive(loopCtx)
			if err != nil {
				if loopCtx.Err() != nil {
					return nil
				}
				return fmt.Errorf("receiving: %w", err)
			}
			prod.SendAsync(loopCtx, &pulsar.ProducerMessage{Payload: msg.Payload()},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						cons.Nack(msg)
						return
					}
					if err := cons.Ack(msg); err != nil {
						ackErrs.Add(1)
					}
				})
		}
	})
	return &running{
		task: loop,
		stop: func(ctx context.Context) error {
			cancel()
			err := loop.wait(ctx)
			if ferr := prod.FlushWithCtx(ctx); ferr != nil {
				err = errors.Join(err, fmt.Errorf("flushing: %w", ferr))
			}
			prod.Close()
			cons.Close()
			client.Close()
			if k := ackErrs.Load(); k > 0 {
				err = errors.Join(err, fmt.Errorf("%d acks failed", k))
			}
			return err
		},
	}, nil
}

// startInstance launches the echo binary in Pulsar Functions instance mode, with the flat
// GoInstanceConfig document the functions worker passes (-instance-conf).
func (b *bench) startInstance(_ context.Context, f flow) (*running, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	conf, err := json.Marshal(map[string]any{
		"pulsarServiceURL": b.cfg.PulsarURL,
		"instanceID":       0, "funcID": "bench-" + b.runID, "funcVersion": "1", "maxBufTuples": 1024,
		"port": port, "metricsPort": metricsPort, "clusterName": "standalone",
		"killAfterIdleMs": 0, "expectedHealthCheckInterval": 0,
		"tenant": "public", "nameSpace": "default", "name": fmt.Sprintf("bench-%s-%s", b.runID, f.name),
		"logTopic": "", "processingGuarantees": 0 /* ATLEAST_ONCE */, "secretsMap": "", "userConfig": "",
		"runtime": 3 /* GO */, "autoAck": true, "parallelism": 1,
		"subscriptionType": 0 /* SHARED */, "timeoutMs": 0, "subscriptionName": "", "cleanupSubscription": true,
		"subscriptionPosition": 1 /* EARLIEST */, "sourceSpecsTopic": f.in, "sourceSchemaType": "",
		"isRegexPatternSubscription": false, "receiverQueueSize": 0,
		"sinkSpecsTopic": f.out, "sinkSchemaType": "",
		"cpu": 1.0, "ram": 1 << 30, "disk": 10 << 30, "maxMessageRetries": 0, "deadLetterTopic": "",
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the instance config: %w", err)
	}
	cmd := exec.Command(b.echoBin, "-instance-conf", string(conf))
	stderr := &tail{max: 4096}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", b.echoBin, err)
	}
	proc := goTask(func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("instance process: %w; stderr: %s", err, stderr)
		}
		return nil
	})
	return &running{
		task: proc,
		pids: func() ([]int, error) { return []int{cmd.Process.Pid}, nil },
		stop: func(ctx context.Context) error { return stopProcess(ctx, cmd, proc) },
	}, nil
}

// stopProcess sends SIGTERM and waits for the process; after processShutdownTimeout (or ctx)
// it kills it.
func stopProcess(ctx context.Context, cmd *exec.Cmd, proc *task) error {
	select {
	case <-proc.done:
		return proc.err
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		// It has exited meanwhile; proc reports how.
		return proc.wait(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, processShutdownTimeout)
	defer cancel()
	if err := proc.wait(ctx); err == nil || ctx.Err() == nil {
		return err
	}
	// An error here means it exited after all; proc says how.
	_ = cmd.Process.Kill()
	<-proc.done
	return fmt.Errorf("pid %d did not exit within %s of SIGTERM; killed", cmd.Process.Pid, processShutdownTimeout)
}

// startHost returns a contender that runs echo in the host runtime (host.New + Run, Pulsar
// mode) at the given parallelism, from the binary every contender runs.
func (b *bench) startHost(parallelism int) func(ctx context.Context, f flow) (*running, error) {
	return func(ctx context.Context, f flow) (*running, error) {
		name := fmt.Sprintf("bench-%s-%s", b.runID, f.name)
		doc := fmt.Sprintf("tenant: public\nnamespace: default\nname: %s\ngo: %s\ninputs: [%s]\noutput: %s\n"+
			"parallelism: %d\nprocessingGuarantees: ATLEAST_ONCE\nsubscriptionPosition: Earliest\n",
			name, b.echoBin, f.in, f.out, parallelism)
		m, err := manifest.Parse(filepath.Join(b.tmp, name+".yaml"), []byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errOperational, err)
		}
		h, err := host.New(ctx, host.Config{
			Functions:       []*manifest.Function{m},
			PulsarURL:       b.cfg.PulsarURL,
			BuildDir:        filepath.Join(b.tmp, "build"),
			ShutdownTimeout: 10 * time.Second,
			Logger:          b.log.With("component", "host"),
		})
		if err != nil {
			return nil, fmt.Errorf("starting the host runtime: %w", err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		hostRun := goTask(func() error {
			if err := h.Run(runCtx); err != nil {
				return fmt.Errorf("host runtime: %w", err)
			}
			if ctx.Err() == nil && runCtx.Err() == nil {
				return errors.New("host runtime stopped on its own")
			}
			return nil
		})
		return &running{
			task: hostRun,
			pids: func() ([]int, error) { return h.Pids(m.FQFN()) },
			stop: func(ctx context.Context) error {
				cancel()
				return hostRun.wait(ctx)
			},
		}, nil
	}
}

// freePort returns a TCP port free at the time of the call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	return port, nil
}

// tail keeps the last max bytes written to it: a process's stderr, for error messages.
type tail struct {
	max int
	mu  sync.Mutex
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
