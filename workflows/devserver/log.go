package devserver

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// minLevel drops Temporal's info and debug logs: the server logs every
// service start, shard movement and membership change at info level.
const minLevel = slog.LevelWarn

// fatalLevel is the level of Temporal's Panic and Fatal.
const fatalLevel = slog.LevelError + 4

// slogLogger adapts an [slog.Logger] to Temporal's [log.Logger].
type slogLogger struct {
	l *slog.Logger
	// quiet is set while the server starts (until [Start] has seen the
	// frontend answer) and from [Server.Stop] on. While the services start
	// or stop one by one, the others log errors about the missing ones
	// ("Frontend is not healthy yet", "Not enough hosts to serve the
	// request", failed polls); these are expected and dropped. Panics and
	// fatal errors are still logged, and a failed start or stop is returned.
	quiet *atomic.Bool
	// starting is set while NewServer and Start run in [start]: a Fatal
	// then panics with a [startFatal], which start recovers into an error
	// (a port taken by another process in the instant between reserving
	// and binding it must not end the gateway).
	starting *atomic.Bool
}

// startFatal is what Fatal panics with while the server starts.
type startFatal struct{ msg string }

func (f startFatal) Error() string { return f.msg }

// expected are warnings about choices made here on purpose.
var expected = map[string]bool{
	// No HTTP port: the gateway uses gRPC only and Nexus is not used.
	"HTTP API port has not been set. Nexus HTTP endpoints will not be available. To enable Nexus, follow these instructions: https://github.com/temporalio/temporal/blob/main/docs/architecture/nexus.md#enabling-nexus.": true,
}

var (
	_ log.Logger     = (*slogLogger)(nil)
	_ log.WithLogger = (*slogLogger)(nil)
)

func (s *slogLogger) log(level slog.Level, msg string, tags []tag.Tag) {
	if level < minLevel || expected[msg] || (s.quiet.Load() && level < fatalLevel) ||
		!s.l.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(tags)+1)
	attrs = append(attrs, slog.String("component", "temporal"))
	for _, t := range tags {
		attrs = append(attrs, slog.Any(t.Key(), t.Value()))
	}
	s.l.LogAttrs(context.Background(), level, msg, attrs...)
}

func (s *slogLogger) Debug(msg string, tags ...tag.Tag)  { s.log(slog.LevelDebug, msg, tags) }
func (s *slogLogger) Info(msg string, tags ...tag.Tag)   { s.log(slog.LevelInfo, msg, tags) }
func (s *slogLogger) Warn(msg string, tags ...tag.Tag)   { s.log(slog.LevelWarn, msg, tags) }
func (s *slogLogger) Error(msg string, tags ...tag.Tag)  { s.log(slog.LevelError, msg, tags) }
func (s *slogLogger) DPanic(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }

// Panic logs and panics, as Temporal's zap logger does.
func (s *slogLogger) Panic(msg string, tags ...tag.Tag) {
	s.log(fatalLevel, msg, tags)
	panic(msg)
}

// Fatal logs and exits, as Temporal's zap logger does: the server calls it
// only when it cannot continue.
func (s *slogLogger) Fatal(msg string, tags ...tag.Tag) {
	if s.starting != nil && s.starting.Load() {
		for _, t := range tags {
			if t.Key() == "error" {
				msg += ": " + fmt.Sprint(t.Value())
			}
		}
		panic(startFatal{msg})
	}
	s.log(fatalLevel, msg, tags)
	os.Exit(1)
}

// With returns a logger that adds tags to every record.
func (s *slogLogger) With(tags ...tag.Tag) log.Logger {
	args := make([]any, 0, len(tags))
	for _, t := range tags {
		args = append(args, slog.Any(t.Key(), t.Value()))
	}
	return &slogLogger{l: s.l.With(args...), quiet: s.quiet, starting: s.starting}
}

// nopSDKLogger silences the SDK client used to probe readiness, whose
// retries while the frontend starts are expected.
type nopSDKLogger struct{}

func (nopSDKLogger) Debug(string, ...any) {}
func (nopSDKLogger) Info(string, ...any)  {}
func (nopSDKLogger) Warn(string, ...any)  {}
func (nopSDKLogger) Error(string, ...any) {}
