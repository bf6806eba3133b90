package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
)

// MaxReviewBytes bounds an AdmissionReview body. The API server caps objects
// at 3 MiB (etcd's request limit is 1.5 MiB); the review wraps one object.
const MaxReviewBytes = 4 << 20

// Path is where the handler is mounted, as upstream's.
const Path = "/mutate-v1-pod"

// Handler answers AdmissionReviews for pods.
type Handler struct {
	config  *Config
	sas     ServiceAccountGetter
	ids     IdentityResolver
	logger  *slog.Logger
	now     func() time.Time
	total   *prometheus.CounterVec
	latency prometheus.Histogram
}

// HandlerOptions are the Handler's dependencies besides its Config.
type HandlerOptions struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer gets the metrics; nil does not register them.
	Registerer prometheus.Registerer
	// Now is the clock for latency; nil is time.Now.
	Now func() time.Time
	// Identities resolves wif.io/identity references; nil refuses pods
	// whose service account uses one.
	Identities IdentityResolver
}

// NewHandler checks cfg and returns a Handler.
func NewHandler(cfg Config, sas ServiceAccountGetter, opts HandlerOptions) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook configuration: %w", err)
	}
	if sas == nil {
		return nil, errors.New("webhook: a service account getter is required")
	}
	h := &Handler{
		config: &cfg, sas: sas, ids: opts.Identities, logger: opts.Logger, now: opts.Now,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_webhook_mutations_total",
			Help: "Pod admission reviews by namespace and result (mutated, unchanged, denied, error).",
		}, []string{"namespace", "result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wif_webhook_admission_duration_seconds",
			Help:    "Time to answer a pod admission review, from the decoded request to the encoded response.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{h.total, h.latency} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register webhook metrics: %w", err)
			}
		}
	}
	return h, nil
}

// DecodeReview parses an admission.k8s.io/v1 AdmissionReview request body.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		return nil, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got %q and %q", review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return nil, errors.New("AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return nil, errors.New("AdmissionReview request has no uid")
	}
	return &review, nil
}

// ServeHTTP implements http.Handler: POST an AdmissionReview as JSON.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, fmt.Sprintf("unsupported content type %q: expected application/json", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReviewBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("AdmissionReview larger than %d bytes", MaxReviewBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	review, err := DecodeReview(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := h.Review(r.Context(), review.Request)
	out, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	})
	if err != nil {
		http.Error(w, "encode AdmissionReview: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// Review answers one admission request. It never fails open: anything that
// goes wrong is a response with allowed=false.
func (h *Handler) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	start := h.now()
	resp, result := h.review(ctx, req)
	resp.UID = req.UID
	h.total.WithLabelValues(req.Namespace, result).Inc()
	h.latency.Observe(h.now().Sub(start).Seconds())
	return resp
}

func errored(code int32, err error) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Code: code, Message: err.Error()}}
}

func (h *Handler) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	if req.Resource.Resource != "pods" || req.SubResource != "" || req.Operation != admissionv1.Create {
		// Not ours (a misconfigured rule): leave it alone.
		return &admissionv1.AdmissionResponse{Allowed: true}, "unchanged"
	}
	var pod corev1.Pod
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &pod); err != nil {
		return errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err)), "error"
	}
	podName := pod.Name
	if podName == "" {
		podName = pod.GenerateName + "*"
	}
	saName := pod.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	// The request's attributes go on each log call rather than through
	// Logger.With, which would format them on every review even though
	// only refusals and debug output log anything.
	attrs := func(more ...any) []any {
		return append([]any{"namespace", req.Namespace, "pod", podName, "serviceAccount", saName, "uid", string(req.UID)}, more...)
	}
	sa, err := h.sas.GetServiceAccount(ctx, req.Namespace, saName)
	if err != nil {
		if apierrors.IsNotFound(err) {
			h.logger.Info("pod denied: no such service account", attrs()...)
			return errored(http.StatusBadRequest, fmt.Errorf("serviceaccounts %q not found", saName)), "denied"
		}
		h.logger.Error("service account lookup failed", attrs("err", err)...)
		return errored(http.StatusInternalServerError, err), "error"
	}
	if ref := sa.Annotations[IdentityRefAnnotation]; ref != "" && sa.Annotations[ClientIDAnnotation] == "" {
		if h.ids == nil {
			return errored(http.StatusBadRequest, fmt.Errorf("service account %s/%s names identity %q (%s), but this webhook does not resolve identity references (run it with access to managedidentity.azure.com objects)", req.Namespace, saName, ref, IdentityRefAnnotation)), "denied"
		}
		id, err := h.ids.IdentityClientID(ctx, req.Namespace, ref)
		if errors.Is(err, ErrIdentityNotReady) {
			h.logger.Info("pod denied: identity reference not ready", attrs("identity", ref, "err", err)...)
			return errored(http.StatusBadRequest, fmt.Errorf("service account %s/%s names identity %q (%s): %v; the pod is admitted once the identity is Ready", req.Namespace, saName, ref, IdentityRefAnnotation, err)), "denied"
		}
		if err != nil {
			h.logger.Error("identity reference lookup failed", attrs("identity", ref, "err", err)...)
			return errored(http.StatusInternalServerError, err), "error"
		}
		sa = sa.DeepCopy()
		sa.Annotations[ClientIDAnnotation] = id
	}
	mutated := pod.DeepCopy()
	warnings, err := h.config.Mutate(mutated, req.Namespace, sa)
	if err != nil {
		var d *Denial
		if errors.As(err, &d) {
			h.logger.Info("pod denied", attrs("reason", d.Msg)...)
			return errored(http.StatusBadRequest, err), "denied"
		}
		return errored(http.StatusInternalServerError, err), "error"
	}
	ops, err := specPatch(&pod.Spec, &mutated.Spec)
	if err != nil {
		return errored(http.StatusInternalServerError, err), "error"
	}
	resp := &admissionv1.AdmissionResponse{Allowed: true, Warnings: warnings}
	if len(ops) == 0 {
		return resp, "unchanged"
	}
	patch, err := marshalPatch(ops)
	if err != nil {
		return errored(http.StatusInternalServerError, fmt.Errorf("encode patch: %w", err)), "error"
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	if h.logger.Enabled(ctx, slog.LevelDebug) {
		h.logger.Debug("pod mutated", attrs("ops", len(ops))...)
	}
	return resp, "mutated"
}

// specPatch diffs the only parts of a pod the mutation touches (init
// containers, containers, volumes), each encoded as the API server encodes
// it, so fields the webhook does not know or a re-encoding would reorder
// never show up in the patch.
func specPatch(before, after *corev1.PodSpec) ([]PatchOp, error) {
	var ops []PatchOp
	for _, part := range []struct {
		path      string
		old, next any
	}{
		{"/spec/initContainers", before.InitContainers, after.InitContainers},
		{"/spec/containers", before.Containers, after.Containers},
		{"/spec/volumes", before.Volumes, after.Volumes},
	} {
		a, err := json.Marshal(part.old)
		if err != nil {
			return nil, fmt.Errorf("encode pod: %w", err)
		}
		b, err := json.Marshal(part.next)
		if err != nil {
			return nil, fmt.Errorf("encode pod: %w", err)
		}
		if bytes.Equal(a, b) {
			continue
		}
		more, err := createPatchAt(part.path, a, b)
		if err != nil {
			return nil, err
		}
		ops = append(ops, more...)
	}
	return ops, nil
}
