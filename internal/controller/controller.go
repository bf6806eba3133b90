// Package controller reconciles Azure Service Operator v2's
// UserAssignedIdentity and FederatedIdentityCredential objects
// (managedidentity.azure.com/v1api20230131) into the wif directory through
// the admin API, so one set of manifests targets Entra (through ASO) in
// Azure and wif everywhere else.
//
// It uses client-go's dynamic informers and a rate-limited work queue, not
// controller-runtime: two kinds, one reconcile loop each and no webhooks of
// its own do not earn controller-runtime's weight (its manager, caches and
// scheme plumbing), and unstructured objects let it read ASO's CRDs as they
// are without generated Go types.
//
// What it honours: spec.azureName (default metadata.name), spec.owner (the
// resource group of an identity; the identity of a credential), tags,
// location, issuer/issuerFromConfig, subject/subjectFromConfig, audiences,
// operatorSpec.configMaps and .secrets (clientId, principalId, tenantId),
// the Ready condition (its message names the directory rule that refused a
// spec), events, a finalizer so that deleting the object deletes the wif
// object, and serviceoperator.azure.com/reconcile-policy (manage, skip,
// detach-on-delete). An object is reconciled only when its namespace is
// watched or it carries wif.io/reconcile: "true", so the controller never
// fights a real ASO installation in the same cluster.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/wif-project/wif/internal/admin"
)

// DefaultSubscriptionID is the subscription identities are created in when
// Config.SubscriptionID is empty (the same as directory documents').
const DefaultSubscriptionID = "00000000-0000-0000-0000-000000000000"

// Config configures a Controller.
type Config struct {
	Dynamic dynamic.Interface
	Kube    kubernetes.Interface
	// Admin is the token service's admin API, authenticated as the
	// controller's identity (ManagedIdentityContributor in the tenant).
	Admin          *admin.Client
	TenantID       string
	SubscriptionID string
	// WatchNamespaces are reconciled whole; "*" means every namespace.
	// Elsewhere only objects annotated wif.io/reconcile: "true" are.
	WatchNamespaces []string
	// Resync re-reads every object this often (default 10 minutes).
	Resync time.Duration
	// Workers is the number of concurrent reconciles (default 2).
	Workers int
	Logger  *slog.Logger
	// Now is the clock for condition times (default time.Now).
	Now func() time.Time
}

// Controller reconciles the two kinds.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	queue   workqueue.TypedRateLimitingInterface[string]
	factory dynamicinformer.DynamicSharedInformerFactory
	ids     cache.GenericLister
	creds   cache.GenericLister
	synced  []cache.InformerSynced
}

// New builds a Controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Dynamic == nil || cfg.Kube == nil || cfg.Admin == nil || cfg.TenantID == "" {
		return nil, errors.New("controller: Dynamic, Kube, Admin and TenantID are required")
	}
	if cfg.SubscriptionID == "" {
		cfg.SubscriptionID = DefaultSubscriptionID
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Controller{cfg: cfg, log: cfg.Logger,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "wif-controller"})}
	c.factory = dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, cfg.Resync)
	idInf := c.factory.ForResource(IdentityGVR)
	credInf := c.factory.ForResource(CredentialGVR)
	c.ids, c.creds = idInf.Lister(), credInf.Lister()
	c.synced = []cache.InformerSynced{idInf.Informer().HasSynced, credInf.Informer().HasSynced}
	enqueue := func(kind string) cache.ResourceEventHandlerFuncs {
		add := func(obj any) {
			if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.queue.Add(kind + "/" + k)
				if kind == "identity" {
					c.enqueueCredentialsOf(obj)
				}
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, n any) { add(n) }, DeleteFunc: add}
	}
	if _, err := idInf.Informer().AddEventHandler(enqueue("identity")); err != nil {
		return nil, err
	}
	if _, err := credInf.Informer().AddEventHandler(enqueue("credential")); err != nil {
		return nil, err
	}
	return c, nil
}

// enqueueCredentialsOf queues the credentials an identity owns: they wait
// for it to be Ready.
func (c *Controller) enqueueCredentialsOf(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	all, err := c.creds.ByNamespace(u.GetNamespace()).List(everything())
	if err != nil {
		return
	}
	for _, o := range all {
		cu, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		if owner, _, _ := unstructured.NestedString(cu.Object, "spec", "owner", "name"); owner == u.GetName() {
			c.queue.Add("credential/" + cu.GetNamespace() + "/" + cu.GetName())
		}
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("controller: the caches of %s and %s did not sync (are the CRDs installed? deploy/crds)", IdentityGVR.Resource, CredentialGVR.Resource)
	}
	c.log.Info("controller: reconciling", "tenant", c.cfg.TenantID, "watch_namespaces", strings.Join(c.cfg.WatchNamespaces, ","))
	for range c.cfg.Workers {
		go func() {
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	return ctx.Err()
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	kind, nsName, _ := strings.Cut(key, "/")
	ns, name, _ := strings.Cut(nsName, "/")
	var err error
	switch kind {
	case "identity":
		err = c.reconcileIdentity(ctx, ns, name)
	case "credential":
		err = c.reconcileCredential(ctx, ns, name)
	}
	if err != nil {
		c.log.Warn("controller: reconcile failed; retrying", "kind", kind, "namespace", ns, "name", name, "error", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// inScope reports whether the controller may touch u.
func (c *Controller) inScope(u *unstructured.Unstructured) bool {
	if u.GetAnnotations()[OptInAnnotation] == "true" {
		return true
	}
	return slices.Contains(c.cfg.WatchNamespaces, "*") || slices.Contains(c.cfg.WatchNamespaces, u.GetNamespace())
}

func policyOf(u *unstructured.Unstructured) (string, error) {
	switch p := u.GetAnnotations()[ReconcilePolicyAnnotation]; p {
	case "", PolicyManage:
		return PolicyManage, nil
	case PolicySkip, PolicyDetachOnDelete:
		return p, nil
	default:
		return "", fmt.Errorf("annotation %s is %q; it must be %s, %s or %s", ReconcilePolicyAnnotation, p, PolicyManage, PolicySkip, PolicyDetachOnDelete)
	}
}

// get reads an object from an informer's cache (nil when gone).
func get(l cache.GenericLister, ns, name string) (*unstructured.Unstructured, error) {
	o, err := l.ByNamespace(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", o)
	}
	return u.DeepCopy(), nil
}

func specOf[T any](u *unstructured.Unstructured) (T, error) {
	var v T
	m, _, _ := unstructured.NestedMap(u.Object, "spec")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &v); err != nil {
		return v, fmt.Errorf("spec: %w", err)
	}
	return v, nil
}

// azureName is spec.azureName, else metadata.name, as ASO defaults it.
func azureName(spec, meta string) string {
	if spec != "" {
		return spec
	}
	return meta
}

// resourceGroup is an identity's owner: a ResourceGroup by name (ASO's
// ResourceGroup object, whose azureName is its name here) or an ARM id.
func resourceGroup(o *resourceRef) (string, error) {
	switch {
	case o == nil || o.Name == "" && o.ARMID == "":
		return "", errors.New("spec.owner is required: the resource group, as {name: RESOURCE_GROUP}")
	case o.Name != "":
		return o.Name, nil
	}
	parts := strings.Split(strings.Trim(o.ARMID, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			return parts[i+1], nil
		}
	}
	return "", fmt.Errorf("spec.owner.armId %q names no resource group (/subscriptions/SUB/resourceGroups/RG)", o.ARMID)
}

// finalize handles a deleted object: the wif object is removed unless the
// policy keeps it, then the finalizer is dropped.
func (c *Controller) finalize(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, policy string, remove func() error) error {
	if !slices.Contains(u.GetFinalizers(), Finalizer) {
		return nil
	}
	if policy == PolicyManage {
		if err := remove(); err != nil && !admin.IsNotFound(err) {
			return fmt.Errorf("delete from the directory: %w", err)
		}
		c.event(ctx, u, corev1.EventTypeNormal, "Deleted", "deleted from the wif directory")
	} else {
		c.event(ctx, u, corev1.EventTypeNormal, "Detached", "left in the wif directory (reconcile-policy "+policy+")")
	}
	u.SetFinalizers(slices.DeleteFunc(u.GetFinalizers(), func(f string) bool { return f == Finalizer }))
	_, err := c.cfg.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Update(ctx, u, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or changed: the next event brings it back
	}
	return err
}
