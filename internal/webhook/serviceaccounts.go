package webhook

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ServiceAccountGetter finds a pod's service account. A missing one is an
// error for which apierrors.IsNotFound is true.
type ServiceAccountGetter interface {
	GetServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
}

// ServiceAccounts looks service accounts up in an informer's cache and, on a
// miss (a service account created a moment before its pod, before the watch
// delivered it), reads the API server directly.
type ServiceAccounts struct {
	// Lister reads the cache.
	Lister corelisters.ServiceAccountLister
	// Client, if set, is asked on a cache miss.
	Client kubernetes.Interface
	// Synced reports whether the cache has synced; nil means it has.
	Synced func() bool
}

// NewServiceAccountInformer builds the cache over client. The cached objects
// keep only the metadata the webhook reads (name, namespace, annotations), so
// a cluster with many service accounts costs little memory. Call Start, then
// use the returned ServiceAccounts.
func NewServiceAccountInformer(client kubernetes.Interface, resync time.Duration) (*ServiceAccounts, func(ctx context.Context)) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithTransform(func(obj any) (any, error) {
			sa, ok := obj.(*corev1.ServiceAccount)
			if !ok {
				return obj, nil // a tombstone: keep as is
			}
			return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
				Name: sa.Name, Namespace: sa.Namespace, Annotations: sa.Annotations,
				ResourceVersion: sa.ResourceVersion, UID: sa.UID,
			}}, nil
		}))
	inf := factory.Core().V1().ServiceAccounts()
	informer := inf.Informer()
	sas := &ServiceAccounts{Lister: inf.Lister(), Client: client, Synced: informer.HasSynced}
	start := func(ctx context.Context) {
		factory.Start(ctx.Done())
		cache.WaitForCacheSync(ctx.Done(), informer.HasSynced)
	}
	return sas, start
}

// GetServiceAccount implements ServiceAccountGetter.
func (s *ServiceAccounts) GetServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa, err := s.Lister.ServiceAccounts(namespace).Get(name)
	if err == nil {
		return sa, nil
	}
	if !apierrors.IsNotFound(err) || s.Client == nil {
		return nil, err
	}
	sa, err = s.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("get service account %s/%s: %w", namespace, name, err)
	}
	return sa, nil
}

// Ready is a readiness check: the cache has synced.
func (s *ServiceAccounts) Ready(context.Context) error {
	if s.Synced != nil && !s.Synced() {
		return fmt.Errorf("service account cache has not synced yet")
	}
	return nil
}
