package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/wif-project/wif/internal/controller"
	"github.com/wif-project/wif/internal/httpx"
)

func newControllerCommand(streams Streams) *cobra.Command {
	var kubeconfig, subscription, leNamespace, leName, listen, logLevel string
	var namespaces []string
	var leaderElect bool
	var resync time.Duration
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Reconcile Azure Service Operator's UserAssignedIdentity and FederatedIdentityCredential objects into the wif directory",
		Long: `wif controller watches the Kubernetes objects Azure Service Operator v2 uses for
workload identity — UserAssignedIdentity and FederatedIdentityCredential of
managedidentity.azure.com/v1api20230131 — and reconciles them into the wif
directory through the admin API, so the manifests a team keeps in Git for Entra
(through ASO) work with wif unchanged. Clusters without ASO install the CRDs
from deploy/crds.

It writes status.clientId, principalId and tenantId, the ConfigMaps and Secrets
of spec.operatorSpec, a Ready condition whose message names the directory rule
that refused a spec, and events; deleting an object deletes its wif object
(reconcile-policy manage) or leaves it (detach-on-delete); skip only reads.
Objects are reconciled only in --watch-namespaces or when annotated
wif.io/reconcile: "true", so it never fights a real ASO in the same cluster.

It authenticates with its own federated identity (AZURE_CLIENT_ID,
AZURE_FEDERATED_TOKEN_FILE; the role ManagedIdentityContributor in the tenant is
enough) and is leader-elected (a Lease), so several replicas are safe.`,
		Args: cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		logger, err := newLogger(streams.ErrOut, logLevel)
		if err != nil {
			return err
		}
		var rc *rest.Config
		if kubeconfig != "" {
			rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		} else {
			rc, err = rest.InClusterConfig()
		}
		if err != nil {
			return fmt.Errorf("kubernetes client: %w (outside a pod, give --kubeconfig)", err)
		}
		rc.UserAgent = "wif-controller"
		kube, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return err
		}
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			return err
		}
		ac, err := af.client(ctx)
		if err != nil {
			return err
		}
		if af.tenant == "" {
			return errors.New("the tenant to reconcile into is needed: --tenant, WIF_TENANT or AZURE_TENANT_ID")
		}
		ctrl, err := controller.New(controller.Config{Dynamic: dyn, Kube: kube, Admin: ac, TenantID: af.tenant, SubscriptionID: subscription,
			WatchNamespaces: namespaces, Resync: resync, Logger: logger})
		if err != nil {
			return err
		}
		if listen != "" {
			ln, err := httpx.Listen(listen)
			if err != nil {
				return err
			}
			mux := http.NewServeMux()
			var probes httpx.Probes
			probes.Mount(mux)
			httpx.MountMetrics(mux, httpx.NewRegistry())
			go func() { _ = (&httpx.Server{Handler: mux, Logger: logger}).Serve(ctx, ln) }()
		}
		if !leaderElect {
			return ignoreCanceled(ctrl.Run(ctx))
		}
		if leNamespace == "" {
			leNamespace = strings.TrimSpace(af.env("POD_NAMESPACE"))
		}
		if leNamespace == "" {
			leNamespace = "default"
		}
		host, _ := os.Hostname()
		lock := &resourcelock.LeaseLock{LeaseMeta: metav1.ObjectMeta{Name: leName, Namespace: leNamespace}, Client: kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: host + "_" + randomSuffix()}}
		var runErr error
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second, ReleaseOnCancel: true,
			Name: leName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					logger.Info("controller: leading", "lease", leNamespace+"/"+leName)
					runErr = ctrl.Run(ctx)
					cancel()
				},
				OnStoppedLeading: func() {
					logger.Info("controller: no longer leading", "lease", leNamespace+"/"+leName)
					cancel()
				},
			},
		})
		return ignoreCanceled(runErr)
	}
	fl := cmd.Flags()
	fl.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster)")
	fl.StringSliceVar(&namespaces, "watch-namespaces", nil, "namespaces whose objects are all reconciled ('*' for every one); elsewhere only objects annotated wif.io/reconcile: \"true\"")
	fl.StringVar(&subscription, "subscription-id", controller.DefaultSubscriptionID, "the subscription identities are created in")
	fl.BoolVar(&leaderElect, "leader-elect", true, "hold a Lease so that one replica reconciles at a time")
	fl.StringVar(&leNamespace, "leader-election-namespace", "", "namespace of the Lease (default $POD_NAMESPACE, else default)")
	fl.StringVar(&leName, "leader-election-id", "wif-controller", "name of the Lease")
	fl.DurationVar(&resync, "resync", 10*time.Minute, "re-read every object this often")
	fl.StringVar(&listen, "listen", "", "serve /healthz, /readyz and /metrics here, e.g. :8080")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// randomSuffix tells replicas on one host apart in the Lease.
func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
