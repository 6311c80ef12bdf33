package pluginserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/internal/datasock"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

const (
	// outBuffer is the capacity of a pipeline's event queue: it lets invocations hand events
	// over while the sender writes the previous frame, and lets the sender batch what piled
	// up. Beyond it, Emit waits (backpressure from the host).
	outBuffer = 256
	// maxBatch and maxBatchBytes bound one frame of events.
	maxBatch      = 256
	maxBatchBytes = 1 << 20
	// maxMaxInFlight bounds the MaxInFlight a host may ask for.
	maxMaxInFlight = 1 << 16
)

var (
	errDraining      = errors.New("plugin draining: not accepting invocations")
	errNotConfigured = errors.New("plugin not configured: Configure first")
	errCanceled      = errors.New("invocation cancelled by the host")
	errFinished      = errors.New("invocation finished")
)

// Server is the plugin half of the protocol: it runs the function for the host's
// invocations. Build it with New; Serve builds one and serves it over go-plugin. Its methods
// are safe for concurrent use.
type Server struct {
	pluginpb.UnimplementedFunctionServer

	h      call.Handler
	logOut io.Writer
	level  slog.LevelVar
	served atomic.Uint64
	// onConfigured, if set, is called once after Configure succeeded: start-up is over then.
	// Serve sets it to releaseStartup.
	onConfigured func() error

	mu          sync.Mutex
	configured  bool
	info        call.Info
	logger      *slog.Logger
	producers   *producers
	maxInFlight int
	slots       chan struct{} // one token per running handler
	draining    bool
	active      int           // accepted invocations whose Done is not handed over yet
	idle        chan struct{} // closed when active drops to 0; nil when nobody waits
	// The data socket, when the host asked for one. dataCancel stops waiting for the host;
	// dataStream, once connected, is the pipeline's stream; dataClosing is set by Close;
	// dataDone is closed when the data socket's goroutine has returned.
	dataCancel  context.CancelFunc
	dataStream  *datasock.ServerStream
	dataClosing bool
	dataDone    chan struct{}
}

var _ pluginpb.FunctionServer = (*Server)(nil)

// New returns a Server that runs h (wrapped in call.Safe, so that a panic fails one input)
// and logs in hclog's JSON shape to logOut. It accepts invocations once configured.
func New(h call.Handler, logOut io.Writer) *Server {
	s := &Server{h: call.Safe(h), logOut: logOut}
	s.level.Set(slog.LevelInfo)
	s.logger = newLogger(logOut, &s.level)
	return s
}

// Configure implements pluginpb.FunctionServer.
func (s *Server) Configure(_ context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	pi := req.GetInfo()
	if pi.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "configure: info.name is empty")
	}
	userConfig := map[string]any{}
	if js := pi.GetUserConfigJson(); js != "" {
		if err := json.Unmarshal([]byte(js), &userConfig); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "configure: userConfig is not a JSON object: %v", err)
		}
		if userConfig == nil { // the JSON was null
			userConfig = map[string]any{}
		}
	}
	n := int(req.GetMaxInFlight())
	switch {
	case n == 0:
		n = plugin.DefaultMaxInFlight
	case n < 0 || n > maxMaxInFlight:
		return nil, status.Errorf(codes.InvalidArgument, "configure: max_in_flight %d out of range 1..%d", n, maxMaxInFlight)
	}
	s.mu.Lock()
	if s.configured {
		s.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "configure: configured already")
	}
	s.level.Set(slogLevel(req.GetLogLevel()))
	s.info = call.Info{
		Tenant:      pi.GetTenant(),
		Namespace:   pi.GetNamespace(),
		Name:        pi.GetName(),
		InstanceID:  int(pi.GetInstanceId()),
		FuncID:      pi.GetFuncId(),
		FuncVersion: pi.GetFuncVersion(),
		ClusterName: pi.GetClusterName(),
		InputTopics: pi.GetInputTopics(),
		OutputTopic: pi.GetOutputTopic(),
		LogTopic:    pi.GetLogTopic(),
		UserConfig:  userConfig,
		ManualAck:   pi.GetManualAck(),
	}
	s.logger = s.logger.With("function", pi.GetName())
	s.producers = newProducers(req.GetPulsarUrl(), s.logger)
	s.maxInFlight = n
	s.slots = make(chan struct{}, n)
	s.configured = true
	logger := s.logger
	resp := &pluginpb.ConfigureResponse{MaxInFlight: int32(n)}
	if req.GetDataSocket() {
		if ln, err := datasock.Listen(); err != nil {
			// The host opens the gRPC pipeline instead.
			logger.Debug("no data socket", "err", err)
		} else {
			resp.DataSocket, resp.DataToken = ln.Addr(), ln.Token()
			s.serveData(ln)
		}
	}
	s.mu.Unlock()
	logger.Info("function configured", "max_in_flight", n, "pulsar", req.GetPulsarUrl() != "", "data_socket", resp.DataSocket != "")
	if s.onConfigured != nil {
		if err := s.onConfigured(); err != nil {
			// Only memory is at stake: the plugin serves all the same.
			logger.Warn("start-up memory not given back", "err", err)
		}
	}
	return resp, nil
}

// serveData runs the pipeline of the data socket ln in a goroutine the Server owns: it waits
// for the host's connection, then serves it until the connection ends or Close stops it.
// s.mu is held.
func (s *Server) serveData(ln *datasock.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.dataCancel, s.dataDone = cancel, done
	logger := s.logger
	go func() {
		defer close(done)
		defer cancel()
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("data socket: no connection from the host", "err", err)
			}
			return
		}
		stream := datasock.NewServerStream(conn)
		defer stream.Close()
		s.mu.Lock()
		closing := s.dataClosing
		if !closing {
			s.dataStream = stream
		}
		s.mu.Unlock()
		if closing {
			return
		}
		if err := s.pipeline(stream); err != nil {
			logger.Debug("data socket pipeline ended", "err", err)
		}
	}()
}

// stopData ends the data socket's pipeline, if any: it stops reading requests, lets the
// invocations end (cancelled, as the gRPC server's Stop does to its streams) and write what
// they queued, and waits for that, bounded by ctx; then it closes the connection.
func (s *Server) stopData(ctx context.Context) {
	s.mu.Lock()
	s.dataClosing = true
	cancel, stream, done := s.dataCancel, s.dataStream, s.dataDone
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if stream != nil {
		stream.StopReading()
	}
	select {
	case <-done:
	case <-ctx.Done():
		if stream != nil {
			stream.Close()
		}
	}
}

func slogLevel(l pluginpb.LogLevel) slog.Level {
	switch l {
	case pluginpb.LogLevel_LOG_LEVEL_TRACE:
		return levelTrace
	case pluginpb.LogLevel_LOG_LEVEL_DEBUG:
		return slog.LevelDebug
	case pluginpb.LogLevel_LOG_LEVEL_WARN:
		return slog.LevelWarn
	case pluginpb.LogLevel_LOG_LEVEL_ERROR:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Health implements pluginpb.FunctionServer.
func (s *Server) Health(context.Context, *pluginpb.HealthRequest) (*pluginpb.HealthResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &pluginpb.HealthResponse{
		Serving:     s.configured && !s.draining,
		InFlight:    int32(s.active),
		MaxInFlight: int32(s.maxInFlight),
		Served:      s.served.Load(),
	}, nil
}

// Drain implements pluginpb.FunctionServer: no invocation is accepted after it; it returns when
// the ones in flight have handed over their Done, or with ctx's error.
func (s *Server) Drain(ctx context.Context, _ *pluginpb.DrainRequest) (*pluginpb.DrainResponse, error) {
	if err := s.waitDrained(ctx); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return &pluginpb.DrainResponse{}, nil
}

// waitDrained stops intake and waits until no invocation is in flight, or returns ctx's error.
func (s *Server) waitDrained(ctx context.Context) error {
	s.mu.Lock()
	if !s.draining {
		s.draining = true
		s.logger.Info("draining", "in_flight", s.active)
	}
	s.mu.Unlock()
	return s.waitIdle(ctx)
}

// waitIdle waits until no invocation is in flight, or returns ctx's error.
func (s *Server) waitIdle(ctx context.Context) error {
	s.mu.Lock()
	if s.active == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close waits, bounded by ctx, for the invocations in flight (the gRPC server has cancelled
// them when it stopped), then closes the NewOutputMessage producers. It does not stop the gRPC
// server.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	p := s.producers
	s.mu.Unlock()
	var errs []error
	s.stopData(ctx)
	if err := s.waitIdle(ctx); err != nil {
		s.mu.Lock()
		n := s.active
		s.mu.Unlock()
		errs = append(errs, fmt.Errorf("stopping with %d invocations still running: %w", n, err))
	}
	if p != nil {
		errs = append(errs, p.close(ctx))
	}
	return errors.Join(errs...)
}

// admit takes a handler slot for one invocation, waiting while all are taken, and counts it
// in flight. The caller must call s.release and then s.finished.
func (s *Server) admit(ctx context.Context) error {
	s.mu.Lock()
	slots, configured, draining := s.slots, s.configured, s.draining
	s.mu.Unlock()
	switch {
	case !configured:
		return errNotConfigured
	case draining:
		return errDraining
	}
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		<-slots
		return errDraining
	}
	s.active++
	return nil
}

// release frees the handler slot as soon as the handler returned, so that the host, which
// frees its own slot when Done arrives, never finds the plugin full.
func (s *Server) release() { <-s.slots }

// finished counts an invocation done once its Done was handed over.
func (s *Server) finished() {
	s.served.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

func (s *Server) env() (*call.Info, *slog.Logger, *producers) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &s.info, s.logger, s.producers
}

// Invoke implements pluginpb.FunctionServer: one invocation per RPC.
func (s *Server) Invoke(req *pluginpb.InvokeRequest, stream pluginpb.Function_InvokeServer) error {
	ctx := stream.Context()
	if err := s.admit(ctx); err != nil {
		return admitStatus(err)
	}
	s.run(ctx, newRecord(context.WithoutCancel(ctx), ctx, req), &unarySink{stream: stream})
	return nil
}

func admitStatus(err error) error {
	switch {
	case errors.Is(err, errNotConfigured):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errDraining):
		return status.Error(codes.Unavailable, err.Error())
	default:
		return status.FromContextError(err).Err()
	}
}

// pipelineStream is what a pipeline needs of its stream: the gRPC stream, or the data socket.
type pipelineStream interface {
	Context() context.Context
	Send(*pluginpb.PipelineEvents) error
	Recv() (*pluginpb.PipelineRequests, error)
}

// Pipeline implements pluginpb.FunctionServer: many invocations over one stream. It owns the
// invocations it starts and returns after they all ended.
func (s *Server) Pipeline(stream pluginpb.Function_PipelineServer) error {
	return s.pipeline(stream)
}

// pipeline serves one pipeline stream, gRPC's or the data socket's.
func (s *Server) pipeline(stream pipelineStream) error {
	s.mu.Lock()
	configured := s.configured
	s.mu.Unlock()
	if !configured {
		return status.Error(codes.FailedPrecondition, errNotConfigured.Error())
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := newEventQueue()
	sent := make(chan error, 1)
	go func() { sent <- sendEvents(stream, out, cancel) }()

	var (
		wg      sync.WaitGroup // the workers
		mu      sync.Mutex
		running = map[uint64]*invocationCtx{}
		values  = context.WithoutCancel(ctx)
		// jobs hands invocations to idle workers; unbuffered, so that a send succeeds only
		// when a worker waits. Workers are reused rather than started per invocation: a new
		// goroutine grows its stack to the handler's depth every time, which profiled at
		// a fifth of the plugin's CPU. admit bounds them to the invocations in flight.
		// Closed once no invocation is started any more, which ends the workers.
		jobs = make(chan *record)
	)
	runJob := func(rec *record) {
		s.run(ctx, rec, &rec.pipe)
		mu.Lock()
		delete(running, rec.pipe.id)
		mu.Unlock()
	}
	startJob := func(rec *record) {
		select {
		case jobs <- rec:
		default:
			wg.Go(func() {
				for ; rec != nil; rec = <-jobs {
					runJob(rec)
				}
			})
		}
	}
	recvErr := func() error {
		for {
			frame, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil // the host closed its side: finish what runs
			}
			if err != nil {
				return err
			}
			for _, r := range frame.GetRequests() {
				id := r.GetId()
				switch x := r.GetRequest().(type) {
				case *pluginpb.PipelineRequest_Invoke:
					rec := newRecord(values, ctx, x.Invoke)
					rec.pipe = pipelineSink{id: id, out: out, stream: ctx}
					if err := s.admit(ctx); err != nil {
						if ctx.Err() != nil {
							return ctx.Err()
						}
						// Draining: refuse this one, keep reading for the others' cancels.
						// The send fails only when the stream is gone, which Recv reports.
						_ = rec.pipe.finish(ctx, nil, doneEvent(pluginpb.ErrorKind_ERROR_KIND_UNAVAILABLE, err.Error(), ""))
						continue
					}
					mu.Lock()
					running[id] = &rec.ctx
					mu.Unlock()
					startJob(rec)
				case *pluginpb.PipelineRequest_Cancel:
					mu.Lock()
					if c := running[id]; c != nil {
						c.cancel(errCanceled)
					}
					mu.Unlock()
				}
			}
		}
	}()
	if recvErr != nil {
		cancel() // the host is gone: stop the invocations
	}
	close(jobs)
	wg.Wait()
	out.close()
	if err := <-sent; err != nil {
		return err
	}
	if recvErr != nil && !errors.Is(recvErr, context.Canceled) {
		return recvErr
	}
	return nil
}

// sendEvents writes the events queued on out, everything queued while the previous frame was
// being sent in one frame (split at maxBatch events or maxBatchBytes of payload), until out is
// closed. On a send error it cancels the pipeline, so that invocations waiting for room in out
// give up, and returns it.
func sendEvents(stream pipelineStream, out *eventQueue, cancel context.CancelFunc) error {
	var frame pluginpb.PipelineEvents
	for {
		batch := out.take()
		if batch == nil {
			return nil
		}
		for len(batch) > 0 {
			n, size := 0, 0
			for n < len(batch) && n < maxBatch && (n == 0 || size < maxBatchBytes) {
				ev := batch[n].GetEvent()
				size += len(ev.GetOutput().GetPayload()) + len(ev.GetDone().GetOutput().GetPayload())
				n++
			}
			frame.Events = batch[:n]
			err := stream.Send(&frame)
			frame.Events = nil
			if err != nil {
				cancel()
				return fmt.Errorf("sending events: %w", err)
			}
			batch = batch[n:]
		}
	}
}
