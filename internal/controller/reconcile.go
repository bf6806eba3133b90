package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

func everything() labels.Selector { return labels.Everything() }

// refusal is a spec the directory refused: permanent until the spec
// changes, so it is reported (Ready=False) and not retried in a loop.
type refusal struct{ reason, msg string }

func (r *refusal) Error() string { return r.msg }

// classify turns an admin API error into a refusal (4xx) or a retryable
// error.
func classify(err error) error {
	var e *admin.Error
	if errors.As(err, &e) && e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests {
		reason := "DirectoryRefused"
		if e.StatusCode == http.StatusForbidden || e.StatusCode == http.StatusUnauthorized {
			reason = "NotAuthorized"
		}
		return &refusal{reason: reason, msg: e.Message}
	}
	return err
}

// ensureFinalizer adds the finalizer; it reports whether u was updated
// (the update event brings the object back for the rest of the work).
func (c *Controller) ensureFinalizer(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured) (bool, error) {
	if slices.Contains(u.GetFinalizers(), Finalizer) {
		return false, nil
	}
	u.SetFinalizers(append(u.GetFinalizers(), Finalizer))
	_, err := c.cfg.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Update(ctx, u, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return true, nil
	}
	return true, err
}

// setStatus writes status fields and the Ready condition, only when they
// change (a status write is an event, which would requeue the object).
func (c *Controller) setStatus(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, fields map[string]any, ready bool, reason, msg string) error {
	old, _, _ := unstructured.NestedMap(u.Object, "status")
	status := map[string]any{}
	maps.Copy(status, fields)
	cond := condition{Type: "Ready", Status: "False", Severity: "Error", Reason: reason, Message: msg, ObservedGeneration: u.GetGeneration()}
	if ready {
		cond.Status, cond.Severity = "True", ""
	}
	var prev condition
	if cs, ok := old["conditions"].([]any); ok {
		for _, x := range cs {
			if m, ok := x.(map[string]any); ok && m["type"] == "Ready" {
				prev.Status, _ = m["status"].(string)
				prev.LastTransitionTime, _ = m["lastTransitionTime"].(string)
			}
		}
	}
	cond.LastTransitionTime = prev.LastTransitionTime
	if prev.Status != cond.Status || cond.LastTransitionTime == "" {
		cond.LastTransitionTime = c.cfg.Now().UTC().Format(time.RFC3339)
	}
	cm := map[string]any{"type": cond.Type, "status": cond.Status, "reason": cond.Reason, "message": cond.Message,
		"observedGeneration": cond.ObservedGeneration, "lastTransitionTime": cond.LastTransitionTime}
	if cond.Severity != "" {
		cm["severity"] = cond.Severity
	}
	status["conditions"] = []any{cm}
	if equalJSON(old, status) {
		return nil
	}
	u.Object["status"] = status
	_, err := c.cfg.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil && !ready && prev.Message != msg {
		c.event(ctx, u, corev1.EventTypeWarning, reason, msg)
	}
	return err
}

func equalJSON(a, b map[string]any) bool {
	return fmt.Sprint(normalize(a)) == fmt.Sprint(normalize(b))
}

// normalize makes numbers of one kind, for comparing a status read back
// (int64) with one built (int64 or int).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int:
		return int64(x)
	case float64:
		return int64(x)
	}
	return v
}

// event records a Kubernetes event on u (best effort).
func (c *Controller) event(ctx context.Context, u *unstructured.Unstructured, typ, reason, msg string) {
	now := metav1.NewTime(c.cfg.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: u.GetName() + ".", Namespace: u.GetNamespace()},
		InvolvedObject: corev1.ObjectReference{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(),
			Name: u.GetName(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion()},
		Type: typ, Reason: reason, Message: clip(msg, 1024), FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "wif-controller"},
	}
	if _, err := c.cfg.Kube.CoreV1().Events(u.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Debug("controller: recording an event failed", "error", err)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ---- identities

func (c *Controller) reconcileIdentity(ctx context.Context, ns, name string) error {
	u, err := get(c.ids, ns, name)
	if err != nil || u == nil || !c.inScope(u) {
		return err
	}
	spec, err := specOf[identitySpec](u)
	if err != nil {
		return c.setStatus(ctx, IdentityGVR, u, nil, false, "InvalidSpec", err.Error())
	}
	policy, perr := policyOf(u)
	rg, rgErr := resourceGroup(spec.Owner)
	idName := azureName(spec.AzureName, u.GetName())
	if u.GetDeletionTimestamp() != nil {
		if perr != nil || rgErr != nil {
			policy = PolicyDetachOnDelete // nothing can be named: keep what exists
		}
		return c.finalize(ctx, IdentityGVR, u, policy, func() error {
			return c.cfg.Admin.DeleteIdentity(ctx, c.cfg.TenantID, c.cfg.SubscriptionID, rg, idName)
		})
	}
	if perr != nil {
		return c.setStatus(ctx, IdentityGVR, u, nil, false, "InvalidAnnotation", perr.Error())
	}
	if rgErr != nil {
		return c.setStatus(ctx, IdentityGVR, u, nil, false, "InvalidSpec", rgErr.Error())
	}
	if updated, err := c.ensureFinalizer(ctx, IdentityGVR, u); updated || err != nil {
		return err
	}
	cur, err := c.cfg.Admin.GetIdentity(ctx, c.cfg.TenantID, c.cfg.SubscriptionID, rg, idName)
	switch {
	case err == nil:
	case admin.IsNotFound(err):
		cur = admin.IdentityResource{}
	default:
		if r := (*refusal)(nil); errors.As(classify(err), &r) {
			return c.setStatus(ctx, IdentityGVR, u, nil, false, r.reason, r.msg)
		}
		return err
	}
	want := admin.IdentityResource{Location: spec.Location, Tags: spec.Tags}
	switch {
	case policy == PolicySkip && cur.Properties == nil:
		return c.setStatus(ctx, IdentityGVR, u, nil, false, "NotFound",
			fmt.Sprintf("reconcile-policy skip: the directory has no managed identity %s/%s, and it is not created", rg, idName))
	case policy == PolicySkip:
	case cur.Properties == nil || cur.Location != want.Location || !maps.Equal(cur.Tags, want.Tags):
		out, err := c.cfg.Admin.PutIdentity(ctx, c.cfg.TenantID, c.cfg.SubscriptionID, rg, idName, want)
		if err != nil {
			if r := (*refusal)(nil); errors.As(classify(err), &r) {
				return c.setStatus(ctx, IdentityGVR, u, nil, false, r.reason, r.msg)
			}
			return err
		}
		cur = out
	}
	p := cur.Properties
	if err := c.writeIdentityOutputs(ctx, u, spec.OperatorSpec, p); err != nil {
		return c.setStatus(ctx, IdentityGVR, u, nil, false, "OutputFailed", err.Error())
	}
	fields := map[string]any{"clientId": p.ClientID, "principalId": p.PrincipalID, "tenantId": p.TenantID, "id": cur.ID, "name": cur.Name}
	if cur.Location != "" {
		fields["location"] = cur.Location
	}
	if len(cur.Tags) > 0 {
		tags := map[string]any{}
		for k, v := range cur.Tags {
			tags[k] = v
		}
		fields["tags"] = tags
	}
	msg := ""
	if policy == PolicySkip {
		msg = "reconcile-policy skip: read from the directory, not written"
	}
	return c.setStatus(ctx, IdentityGVR, u, fields, true, "Succeeded", msg)
}

// writeIdentityOutputs writes the ConfigMaps and Secrets operatorSpec asks
// for, owned by the identity object so they go with it.
func (c *Controller) writeIdentityOutputs(ctx context.Context, u *unstructured.Unstructured, op *identityOperatorSpec, p *admin.IdentityProperties) error {
	if op == nil {
		return nil
	}
	type out struct {
		ref   *configMapRef
		value string
	}
	owner := metav1.OwnerReference{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Name: u.GetName(), UID: u.GetUID()}
	group := func(refs []out) map[string]map[string]string {
		byName := map[string]map[string]string{}
		for _, o := range refs {
			if o.ref == nil || o.ref.Name == "" || o.ref.Key == "" {
				continue
			}
			if byName[o.ref.Name] == nil {
				byName[o.ref.Name] = map[string]string{}
			}
			byName[o.ref.Name][o.ref.Key] = o.value
		}
		return byName
	}
	if op.ConfigMaps != nil {
		for name, data := range group([]out{{op.ConfigMaps.ClientID, p.ClientID}, {op.ConfigMaps.PrincipalID, p.PrincipalID}, {op.ConfigMaps.TenantID, p.TenantID}}) {
			cms := c.cfg.Kube.CoreV1().ConfigMaps(u.GetNamespace())
			cm, err := cms.Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: u.GetNamespace(), OwnerReferences: []metav1.OwnerReference{owner}}, Data: data}, metav1.CreateOptions{})
			case err == nil:
				if cm.Data == nil {
					cm.Data = map[string]string{}
				}
				changed := false
				for k, v := range data {
					changed = changed || cm.Data[k] != v
					cm.Data[k] = v
				}
				if changed {
					_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
				}
			}
			if err != nil {
				return fmt.Errorf("write ConfigMap %s: %w", name, err)
			}
		}
	}
	if op.Secrets != nil {
		for name, data := range group([]out{{op.Secrets.ClientID, p.ClientID}, {op.Secrets.PrincipalID, p.PrincipalID}, {op.Secrets.TenantID, p.TenantID}}) {
			ss := c.cfg.Kube.CoreV1().Secrets(u.GetNamespace())
			s, err := ss.Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, err = ss.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: u.GetNamespace(), OwnerReferences: []metav1.OwnerReference{owner}}, StringData: data}, metav1.CreateOptions{})
			case err == nil:
				changed := false
				for k, v := range data {
					changed = changed || string(s.Data[k]) != v
				}
				if changed {
					s.StringData = data
					_, err = ss.Update(ctx, s, metav1.UpdateOptions{})
				}
			}
			if err != nil {
				return fmt.Errorf("write Secret %s: %w", name, err)
			}
		}
	}
	return nil
}

// ---- credentials

func (c *Controller) reconcileCredential(ctx context.Context, ns, name string) error {
	u, err := get(c.creds, ns, name)
	if err != nil || u == nil || !c.inScope(u) {
		return err
	}
	spec, err := specOf[credentialSpec](u)
	if err != nil {
		return c.setStatus(ctx, CredentialGVR, u, nil, false, "InvalidSpec", err.Error())
	}
	policy, perr := policyOf(u)
	credName := azureName(spec.AzureName, u.GetName())
	// The owner: an identity object of the same namespace.
	var owner *unstructured.Unstructured
	var idSpec identitySpec
	var rg, idName string
	if spec.Owner != nil && spec.Owner.Name != "" {
		if owner, err = get(c.ids, ns, spec.Owner.Name); err != nil {
			return err
		}
	}
	if owner != nil {
		if idSpec, err = specOf[identitySpec](owner); err == nil {
			rg, err = resourceGroup(idSpec.Owner)
		}
		idName = azureName(idSpec.AzureName, owner.GetName())
	}
	if u.GetDeletionTimestamp() != nil {
		if perr != nil || owner == nil || err != nil {
			policy = PolicyDetachOnDelete // with no owner nothing is left to delete
		}
		return c.finalize(ctx, CredentialGVR, u, policy, func() error {
			return c.cfg.Admin.DeleteIdentityCredential(ctx, c.cfg.TenantID, c.cfg.SubscriptionID, rg, idName, credName)
		})
	}
	if perr != nil {
		return c.setStatus(ctx, CredentialGVR, u, nil, false, "InvalidAnnotation", perr.Error())
	}
	switch {
	case spec.Owner == nil || spec.Owner.Name == "":
		return c.setStatus(ctx, CredentialGVR, u, nil, false, "InvalidSpec", "spec.owner.name is required: the UserAssignedIdentity of this namespace that the credential belongs to")
	case owner == nil:
		return c.setStatus(ctx, CredentialGVR, u, nil, false, "WaitingForOwner", fmt.Sprintf("owner UserAssignedIdentity %q does not exist in namespace %s", spec.Owner.Name, ns))
	case err != nil:
		return c.setStatus(ctx, CredentialGVR, u, nil, false, "WaitingForOwner", fmt.Sprintf("owner UserAssignedIdentity %q: %v", spec.Owner.Name, err))
	}
	if id, _, _ := unstructured.NestedString(owner.Object, "status", "clientId"); id == "" {
		return c.setStatus(ctx, CredentialGVR, u, nil, false, "WaitingForOwner", fmt.Sprintf("owner UserAssignedIdentity %q is not Ready yet", spec.Owner.Name))
	}
	issuer, subject := spec.Issuer, spec.Subject
	if spec.IssuerFromConfig != nil {
		if issuer, err = c.fromConfig(ctx, ns, spec.IssuerFromConfig); err != nil {
			return c.setStatus(ctx, CredentialGVR, u, nil, false, "ConfigMapNotFound", "spec.issuerFromConfig: "+err.Error())
		}
	}
	if spec.SubjectFromConfig != nil {
		if subject, err = c.fromConfig(ctx, ns, spec.SubjectFromConfig); err != nil {
			return c.setStatus(ctx, CredentialGVR, u, nil, false, "ConfigMapNotFound", "spec.subjectFromConfig: "+err.Error())
		}
	}
	want := admin.CredentialProperties{Issuer: issuer, Subject: subject, Audiences: spec.Audiences}
	if expr := u.GetAnnotations()[ClaimsExpressionAnnotation]; expr != "" {
		want.ClaimsMatchingExpression = &directory.ClaimsMatchingExpression{Value: expr, LanguageVersion: 1}
	}
	if len(want.Audiences) == 0 {
		want.Audiences = []string{directory.DefaultAudience}
	}
	if updated, err := c.ensureFinalizer(ctx, CredentialGVR, u); updated || err != nil {
		return err
	}
	cur, err := c.cfg.Admin.GetIdentityCredential(ctx, c.cfg.TenantID, c.cfg.SubscriptionID, rg, idName, credName)
	exists := err == nil
	if err != nil && !admin.IsNotFound(err) {
		if r := (*refusal)(nil); errors.As(classify(err), &r) {
			return c.setStatus(ctx, CredentialGVR, u, nil, false, r.reason, r.msg)
		}
		return err
	}
	switch {
	case policy == PolicySkip && !exists:
		return c.setStatus(ctx, CredentialGVR, u, nil, false, "NotFound",
			fmt.Sprintf("reconcile-policy skip: identity %s/%s has no federated credential %q, and it is not created", rg, idName, credName))
	case policy == PolicySkip:
	case !exists || !sameCredential(cur.Properties, &want):
		out, err := c.cfg.Admin.PutIdentityCredential(ctx, c.cfg.TenantID, c.cfg.SubscriptionID, rg, idName, credName, want)
		if err != nil {
			if r := (*refusal)(nil); errors.As(classify(err), &r) {
				return c.setStatus(ctx, CredentialGVR, u, nil, false, r.reason, r.msg)
			}
			return err
		}
		cur = out
	}
	p := cur.Properties
	auds := make([]any, len(p.Audiences))
	for i, a := range p.Audiences {
		auds[i] = a
	}
	fields := map[string]any{"id": cur.ID, "name": cur.Name, "issuer": p.Issuer, "audiences": auds}
	if p.Subject != "" {
		fields["subject"] = p.Subject
	}
	msg := ""
	if policy == PolicySkip {
		msg = "reconcile-policy skip: read from the directory, not written"
	}
	return c.setStatus(ctx, CredentialGVR, u, fields, true, "Succeeded", msg)
}

func sameCredential(a, b *admin.CredentialProperties) bool {
	if a == nil || b == nil {
		return false
	}
	ea, eb := "", ""
	if a.ClaimsMatchingExpression != nil {
		ea = a.ClaimsMatchingExpression.Value
	}
	if b.ClaimsMatchingExpression != nil {
		eb = b.ClaimsMatchingExpression.Value
	}
	return a.Issuer == b.Issuer && a.Subject == b.Subject && ea == eb && slices.Equal(a.Audiences, b.Audiences)
}

// fromConfig reads a value from a ConfigMap of the namespace.
func (c *Controller) fromConfig(ctx context.Context, ns string, ref *configMapRef) (string, error) {
	cm, err := c.cfg.Kube.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("ConfigMap %s/%s: %w", ns, ref.Name, err)
	}
	v, ok := cm.Data[ref.Key]
	if !ok {
		keys := slices.Sorted(maps.Keys(cm.Data))
		return "", fmt.Errorf("ConfigMap %s/%s has no key %q (it has: %s)", ns, ref.Name, ref.Key, strings.Join(keys, ", "))
	}
	return strings.TrimSpace(v), nil
}
