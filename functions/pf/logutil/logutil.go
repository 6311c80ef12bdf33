// Package logutil is a drop-in for upstream pulsar-function-go's logutil: the same
// Debug/Info/Warn/Error/Fatal functions with f-variants, so functions that use it port by
// changing the import path.
//
// The lines go to the process's default slog logger, which pf.Start sets up for the launch
// mode (JSON on stderr; also shipped to the function's log topic in instance mode). New code
// should prefer the structured logger of pf.FunctionContext.Logger.
package logutil

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"
)

// Debug logs its arguments, formatted like fmt.Sprint, at debug level.
func Debug(args ...any) { logAt(slog.LevelDebug, fmt.Sprint(args...)) }

// Debugf logs at debug level, formatted like fmt.Sprintf.
func Debugf(format string, args ...any) { logAt(slog.LevelDebug, fmt.Sprintf(format, args...)) }

// Info logs its arguments at info level.
func Info(args ...any) { logAt(slog.LevelInfo, fmt.Sprint(args...)) }

// Infof logs at info level, formatted.
func Infof(format string, args ...any) { logAt(slog.LevelInfo, fmt.Sprintf(format, args...)) }

// Warn logs its arguments at warn level.
func Warn(args ...any) { logAt(slog.LevelWarn, fmt.Sprint(args...)) }

// Warnf logs at warn level, formatted.
func Warnf(format string, args ...any) { logAt(slog.LevelWarn, fmt.Sprintf(format, args...)) }

// Error logs its arguments at error level.
func Error(args ...any) { logAt(slog.LevelError, fmt.Sprint(args...)) }

// Errorf logs at error level, formatted.
func Errorf(format string, args ...any) { logAt(slog.LevelError, fmt.Sprintf(format, args...)) }

// Fatal logs at error level and exits the process with status 1, as upstream does. Inside a
// function, return an error instead: that fails one input, not the instance.
func Fatal(args ...any) {
	logAt(slog.LevelError, fmt.Sprint(args...))
	os.Exit(1)
}

// Fatalf is Fatal, formatted.
func Fatalf(format string, args ...any) {
	logAt(slog.LevelError, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// logAt logs msg with the caller's source position (two frames up: the exported function's
// caller).
func logAt(level slog.Level, msg string) {
	logger := slog.Default()
	ctx := context.Background()
	if !logger.Enabled(ctx, level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:])
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	// A handler error has nowhere better to go than the handler that failed.
	_ = logger.Handler().Handle(ctx, r)
}
