// Package telemetry is wif's OpenTelemetry tracing: a tracer provider that
// exports spans over OTLP/HTTP when an endpoint is configured (and is a
// no-op otherwise), server spans for HTTP handlers that continue a
// caller's W3C traceparent, propagation to outgoing requests, and trace
// ids in the logs. The provider is passed to each part explicitly; nothing
// is installed globally.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/wif-project/wif/internal/buildinfo"
)

// Options configure tracing.
type Options struct {
	// Endpoint is the OTLP/HTTP collector's base URL
	// (http://collector:4318); empty: $OTEL_EXPORTER_OTLP_ENDPOINT; both
	// empty: tracing is off.
	Endpoint string
	// ServiceName names this process in traces (wif-serve, wif-gateway...).
	ServiceName string
	// LookupEnv reads OTEL_EXPORTER_OTLP_ENDPOINT (default: nothing set).
	LookupEnv func(string) (string, bool)
}

// Provider is the tracer provider and how to flush it.
type Provider struct {
	trace.TracerProvider
	shutdown func(context.Context) error
	// Enabled is false for the no-op provider.
	Enabled bool
}

// Shutdown flushes buffered spans (bounded by ctx).
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.shutdown == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// Noop is a provider that records nothing.
func Noop() *Provider { return &Provider{TracerProvider: noop.NewTracerProvider()} }

// New returns the exporting provider for o, or Noop when no endpoint is
// configured.
func New(ctx context.Context, o Options) (*Provider, error) {
	ep := o.Endpoint
	if ep == "" && o.LookupEnv != nil {
		ep, _ = o.LookupEnv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if ep == "" {
		return Noop(), nil
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want http(s)://host:port", ep)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(strings.TrimSuffix(ep, "/") + "/v1/traces"), otlptracehttp.WithTimeout(10 * time.Second)}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", o.ServiceName), attribute.String("service.version", buildinfo.Get().Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)), sdktrace.WithResource(res))
	return &Provider{TracerProvider: tp, shutdown: tp.Shutdown, Enabled: true}, nil
}

// Propagator reads and writes W3C traceparent/tracestate.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Enabled reports whether p records spans: not nil and not a no-op
// Provider. Parts skip span work on their hot paths when it is false.
func Enabled(p trace.TracerProvider) bool {
	if p == nil {
		return false
	}
	if pp, ok := p.(*Provider); ok {
		return pp.Enabled
	}
	return true
}

// Tracer returns p's tracer for a part; a nil p traces nothing.
func Tracer(p trace.TracerProvider, part string) trace.Tracer {
	if p == nil {
		return noop.NewTracerProvider().Tracer(part)
	}
	return p.Tracer("github.com/wif-project/wif/" + part)
}

// Handler wraps h with a server span per request, continuing the caller's
// traceparent; the span is named by the route pattern the mux matched.
func Handler(p trace.TracerProvider, part string, h http.Handler) http.Handler {
	if !Enabled(p) {
		return h
	}
	tr := Tracer(p, part)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", clipPath(r.URL.Path))))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		h.ServeHTTP(sw, r)
		if r.Pattern != "" {
			span.SetName(r.Pattern)
			span.SetAttributes(attribute.String("http.route", r.Pattern))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// Inject writes ctx's span context into an outgoing request's headers.
func Inject(ctx context.Context, h http.Header) {
	Propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

func clipPath(p string) string {
	if len(p) > 256 {
		return p[:256]
	}
	return p
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush passes through for streaming responses.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// LogHandler adds trace_id and span_id to every record logged with a
// context that carries a recording span.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(as)}
}
func (l logHandler) WithGroup(n string) slog.Handler { return logHandler{l.Handler.WithGroup(n)} }
