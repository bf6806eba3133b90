package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/store"
)

// Error codes of the admin API, in ARM's style.
const (
	CodeBadRequest          = "BadRequest"
	CodeInvalidRequest      = "InvalidRequestContent"
	CodeValidation          = "ValidationError"
	CodeNotFound            = "NotFound"
	CodeConflict            = "Conflict"
	CodePreconditionFailed  = "PreconditionFailed"
	CodeAuthentication      = "AuthenticationFailed"
	CodeAuthorization       = "AuthorizationFailed"
	CodeTooLarge            = "RequestEntityTooLarge"
	CodeUnsupportedMedia    = "UnsupportedMediaType"
	CodeInternal            = "InternalServerError"
	CodeUnavailable         = "ServiceUnavailable"
	CodeMethodNotAllowed    = "MethodNotAllowed"
	CodeInvalidQueryOptions = "InvalidQueryParameterValue"
	// CodeQuotaExceeded: a parent already holds the most federated
	// credentials allowed (409).
	CodeQuotaExceeded = "QuotaExceeded"
)

// ErrorBody is the admin API's error document:
// {"error":{"code":"...","message":"...","target":"...","details":[...]}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is an error or one of its details.
type ErrorDetail struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Target  string        `json:"target,omitempty"`
	Details []ErrorDetail `json:"details,omitempty"`
}

// apiError is an error with its HTTP status and code.
type apiError struct {
	status int
	body   ErrorDetail
}

func (e *apiError) Error() string { return e.body.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, body: ErrorDetail{Code: code, Message: fmt.Sprintf(format, args...)}}
}

var errPrecondition = errors.New("precondition failed")

// toAPIError maps an error to a status and an error document.
func toAPIError(err error, logger *slog.Logger, r *http.Request) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ves directory.ValidationErrors
	var ve *directory.ValidationError
	if errors.As(err, &ves) || errors.As(err, &ve) {
		if ve != nil && ves == nil {
			ves = directory.ValidationErrors{ve}
		}
		d := ErrorDetail{Code: CodeValidation, Message: ves.Error(), Target: ves[0].Field}
		for _, e := range ves {
			d.Details = append(d.Details, ErrorDetail{Code: CodeValidation, Target: e.Field, Message: e.Error()})
		}
		if errors.Is(err, directory.ErrCredentialLimit) {
			// The limit depends on the parent's state, not on the
			// request: Conflict, as ARM answers it.
			d.Code = CodeQuotaExceeded
			return &apiError{status: http.StatusConflict, body: d}
		}
		return &apiError{status: http.StatusBadRequest, body: d}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "the request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, ErrUnauthenticated):
		return errorf(http.StatusUnauthorized, CodeAuthentication, "%v", err)
	case errors.Is(err, ErrForbidden):
		return errorf(http.StatusForbidden, CodeAuthorization, "%v", err)
	case errors.Is(err, errPrecondition):
		return errorf(http.StatusPreconditionFailed, CodePreconditionFailed, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	case errors.Is(err, store.ErrAlreadyExists):
		return errorf(http.StatusConflict, CodeConflict, "%v", err)
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, CodeConflict, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the request did not finish in time; retry")
	case store.IsUnavailable(err):
		logger.Warn("admin request failed: the store is unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the directory store is unavailable; retry after a short wait (nothing was changed)")
	}
	id := httpx.NewCorrelationID()
	logger.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "correlationId", id, "err", err)
	return errorf(http.StatusInternalServerError, CodeInternal, "internal error (correlation id %s); see the server log", id)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"InternalServerError","message":"could not encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer resource="`+AdminResource+`", error="invalid_token"`)
	}
	if e.status == http.StatusServiceUnavailable {
		// az, the Azure SDKs and controllers back off and retry on 503
		// with Retry-After; they treat a 500 as a bug.
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, e.status, ErrorBody{Error: e.body})
}
