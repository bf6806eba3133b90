package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/store"
)

// KeyOperator is what the admin API does with the token service's signing
// keys (*jose.Manager implements it).
type KeyOperator interface {
	Keys(ctx context.Context) ([]jose.KeyInfo, error)
	Rotate(ctx context.Context, immediate bool) (jose.KeyInfo, error)
	Retire(ctx context.Context, kid string) (jose.KeyInfo, error)
	Rewrap(ctx context.Context, kekID string) (jose.RewrapResult, error)
}

// KeyList is the reply to GET /admin/signingKeys.
type KeyList struct {
	Value []jose.KeyInfo `json:"value"`
}

// RewrapRequest is the body of POST /admin/signingKeys/rewrap.
type RewrapRequest struct {
	// KEKID is the id of the key-encryption key to seal with (KEKID of
	// the new key file): it must be the one the server seals with.
	KEKID string `json:"kekId"`
}

func (h *Handler) keyOperator() (KeyOperator, error) {
	if h.cfg.Keys == nil {
		return nil, errorf(http.StatusNotImplemented, CodeBadRequest, "this server manages no signing keys through the admin API")
	}
	return h.cfg.Keys, nil
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request) error {
	k, err := h.keyOperator()
	if err != nil {
		return err
	}
	ks, err := k.Keys(r.Context())
	if err != nil {
		return err
	}
	if ks == nil {
		ks = []jose.KeyInfo{}
	}
	return respond(w, http.StatusOK, "", KeyList{Value: ks})
}

func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request) error {
	k, err := h.keyOperator()
	if err != nil {
		return err
	}
	immediate := boolQuery(r, "immediate")
	info, err := k.Rotate(r.Context(), immediate)
	what := "rotate"
	if immediate {
		what = "rotate --now"
	}
	h.auditKeyOp(r, what, err, func() string {
		return fmt.Sprintf("new signing key %s published, signs from %s", info.KeyID, info.SignsFrom.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return keyError(err)
	}
	return respond(w, http.StatusCreated, "", info)
}

func (h *Handler) retireKey(w http.ResponseWriter, r *http.Request) error {
	k, err := h.keyOperator()
	if err != nil {
		return err
	}
	kid := r.PathValue("kid")
	info, err := k.Retire(r.Context(), kid)
	h.auditKeyOp(r, "retire "+clipText(kid, 64), err, func() string {
		return "signing key " + info.KeyID + " retired: no longer published; tokens it signed are refused"
	})
	if err != nil {
		return keyError(err)
	}
	return respond(w, http.StatusOK, "", info)
}

func (h *Handler) rewrapKeys(w http.ResponseWriter, r *http.Request) error {
	k, err := h.keyOperator()
	if err != nil {
		return err
	}
	var in RewrapRequest
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	res, err := k.Rewrap(r.Context(), in.KEKID)
	h.auditKeyOp(r, "rewrap", err, func() string {
		return fmt.Sprintf("%d signing keys sealed anew with key-encryption key %s (%d unchanged)", len(res.Rewrapped), res.SealedWith, len(res.Unchanged))
	})
	if err != nil {
		return keyError(err)
	}
	return respond(w, http.StatusOK, "", res)
}

// keyError maps the key operations' refusals to statuses.
func keyError(err error) error {
	switch {
	case errors.Is(err, jose.ErrRotationPending), errors.Is(err, jose.ErrRetireActive),
		errors.Is(err, jose.ErrNoKEK), errors.Is(err, jose.ErrKEKMismatch):
		return errorf(http.StatusConflict, CodeConflict, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	}
	return err
}

// auditKeyOp records a key operation in the audit log, as a success (with
// what it did) or a failure, attributed to the caller.
func (h *Handler) auditKeyOp(r *http.Request, what string, err error, did func() string) {
	c := callerFrom(r)
	rec := store.AuditRecord{Time: time.Now().UTC(), TenantID: c.TenantID, ClientID: c.ClientID, GrantType: "admin",
		Resource: "signingKeys", CorrelationID: httpx.NewCorrelationID(), RemoteAddr: r.RemoteAddr, Result: store.AuditSuccess}
	if c.Unrestricted {
		rec.ClientID = "loopback"
	}
	if err != nil {
		rec.Result, rec.Reason = store.AuditFailure, clipText(what+": "+err.Error(), 256)
	} else {
		rec.Reason = clipText(what+": "+did(), 256)
	}
	if rec.TenantID == "" {
		rec.TenantID = c.OperatorTenant
	}
	if aerr := h.cfg.Store.AppendAudit(context.WithoutCancel(r.Context()), []store.AuditRecord{rec}); aerr != nil {
		h.cfg.Logger.Error("recording a signing-key operation in the audit log failed", "operation", what, "error", aerr)
	}
	h.cfg.Logger.Warn("signing-key operation", "operation", what, "result", rec.Result, "client_id", rec.ClientID, "reason", strings.TrimPrefix(rec.Reason, what+": "))
}
