package imds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wif-project/wif/internal/stsclient"
)

// apiError is an error answer in IMDS's shape:
// {"error":"invalid_request","error_description":"..."}, plus the token
// service's error_codes, trace and correlation ids when it refused.
type apiError struct {
	status     int
	code       string
	desc       string
	retryAfter string
	// passed through from the token service
	errorCodes    []int
	timestamp     string
	traceID       string
	correlationID string
}

type errorBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes,omitempty"`
	Timestamp     string `json:"timestamp,omitempty"`
	TraceID       string `json:"trace_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
}

// imdsToken is IMDS's token response; every number is a string.
type imdsToken struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
}

// appService2017Time is the layout of expires_on in App Service's
// 2017-09-01 answers.
const appService2017Time = "01/02/2006 15:04:05 -07:00"

// appServiceToken is the App Service token response (api-version
// 2019-08-01, and 2017-09-01 with expires_on as a date).
type appServiceToken struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // echo the resource as given, '&' and all
	if err := enc.Encode(v); err != nil {
		// Only strings and ints are encoded; this cannot happen.
		http.Error(w, `{"error":"server_error","error_description":"encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	// As h.Set of each, with one allocation for the four values; each
	// header gets a capacity-1 slice, so an append elsewhere reallocates.
	vals := []string{"application/json; charset=utf-8", "no-store", "no-cache", "nosniff"}
	h := w.Header()
	h["Content-Type"] = vals[0:1:1]
	h["Cache-Control"] = vals[1:2:2]
	h["Pragma"] = vals[2:3:3]
	h["X-Content-Type-Options"] = vals[3:4:4]
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter != "" {
		w.Header().Set("Retry-After", e.retryAfter)
	}
	writeJSON(w, e.status, errorBody{
		Error: e.code, Description: e.desc, ErrorCodes: e.errorCodes,
		Timestamp: e.timestamp, TraceID: e.traceID, CorrelationID: e.correlationID,
	})
}

func writeToken(w http.ResponseWriter, p protocol, req tokenRequest, tok *stsclient.Token, now time.Time) {
	expiresOn := strconv.FormatInt(tok.ExpiresOn.Unix(), 10)
	tokenType := tok.TokenType
	if tokenType == "" {
		tokenType = "Bearer"
	}
	switch p {
	case protoAppService:
		writeJSON(w, http.StatusOK, appServiceToken{
			AccessToken: tok.AccessToken, ExpiresOn: expiresOn, Resource: req.resource,
			TokenType: tokenType, ClientID: req.clientID,
		})
		return
	case protoAppService2017:
		// 2017-09-01 gives expires_on as a UTC date, "MM/DD/YYYY HH:MM:SS +00:00".
		writeJSON(w, http.StatusOK, appServiceToken{
			AccessToken: tok.AccessToken, ExpiresOn: tok.ExpiresOn.UTC().Format(appService2017Time), Resource: req.resource,
			TokenType: tokenType, ClientID: req.clientID,
		})
		return
	}
	expiresIn := int64(tok.ExpiresOn.Sub(now) / time.Second)
	if expiresIn < 0 {
		expiresIn = 0
	}
	writeJSON(w, http.StatusOK, imdsToken{
		AccessToken: tok.AccessToken, RefreshToken: "",
		ExpiresIn: strconv.FormatInt(expiresIn, 10), ExpiresOn: expiresOn,
		NotBefore: strconv.FormatInt(tok.ObtainedAt.Unix(), 10),
		Resource:  req.resource, TokenType: tokenType,
	})
}

// exchangeResult classifies an exchange's outcome for metrics.
func exchangeResult(err error) string {
	var re *stsclient.ResponseError
	var te *stsclient.TransportError
	var ae *stsclient.AssertionError
	switch {
	case err == nil:
		return "success"
	case errors.As(err, &re) && re.StatusCode/100 == 4:
		return "refused"
	case errors.As(err, &re):
		return "server_error"
	case errors.As(err, &te):
		return "unreachable"
	case errors.As(err, &ae):
		return "token_file_error"
	case errors.Is(err, stsclient.ErrMalformedResponse):
		return "malformed_response"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "error"
	}
}

// exchangeError turns a failed exchange into the answer for the caller: the
// token service's refusals (4xx) pass through with their status, error and
// description; its failures become 502 (503 when it said so); when it cannot
// be reached or the token file cannot be read, 503 so clients retry.
func exchangeError(err error, endpoint string) *apiError {
	var re *stsclient.ResponseError
	var te *stsclient.TransportError
	var ae *stsclient.AssertionError
	switch {
	case errors.As(err, &re):
		e := &apiError{status: re.StatusCode, code: re.ErrorCode, desc: re.Description,
			errorCodes: re.ErrorCodes, timestamp: re.Timestamp, traceID: re.TraceID, correlationID: re.CorrelationID}
		detail := re.Description
		if detail == "" {
			detail = fmt.Sprintf("%q", re.Body)
		}
		switch {
		case re.StatusCode/100 == 4:
			if e.code == "" {
				e.code = "invalid_request"
			}
			if e.desc == "" {
				e.desc = fmt.Sprintf("the token service at %s refused the exchange with status %d: %s", endpoint, re.StatusCode, detail)
			}
			if re.StatusCode == http.StatusTooManyRequests {
				e.retryAfter = re.RetryAfter
			}
		case re.StatusCode == http.StatusServiceUnavailable:
			if e.code == "" {
				e.code = "temporarily_unavailable"
			}
			e.desc = fmt.Sprintf("the token service at %s is unavailable (503): %s", endpoint, detail)
			e.retryAfter = re.RetryAfter
		default:
			e.status = http.StatusBadGateway
			if e.code == "" {
				e.code = "server_error"
			}
			e.desc = fmt.Sprintf("the token service at %s failed with status %d: %s", endpoint, re.StatusCode, detail)
		}
		return e
	case errors.As(err, &te):
		what := "could not be reached"
		if te.Timeout() {
			what = "did not answer in time"
		}
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			desc: fmt.Sprintf("the token service at %s %s (%v); check that it is running and that AZURE_AUTHORITY_HOST points at it", endpoint, what, te.Err)}
	case errors.As(err, &ae):
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			desc: fmt.Sprintf("the workload's federated token could not be read: %v; check AZURE_FEDERATED_TOKEN_FILE and the projected service-account token volume", ae)}
	case errors.Is(err, stsclient.ErrMalformedResponse):
		return &apiError{status: http.StatusBadGateway, code: "server_error",
			desc: fmt.Sprintf("the token service at %s answered with something that is not a token response (%v); check AZURE_AUTHORITY_HOST", endpoint, err)}
	case errors.Is(err, errClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "wif imds is shutting down; retry"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			desc: fmt.Sprintf("the exchange at %s did not finish in time; retry", endpoint)}
	default:
		return &apiError{status: http.StatusBadGateway, code: "server_error",
			desc: fmt.Sprintf("the exchange at %s failed: %v", endpoint, err)}
	}
}
