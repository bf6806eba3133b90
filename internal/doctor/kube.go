package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/webhook"
)

// KubeTarget is the pod whose injection to check, through the API server.
type KubeTarget struct {
	Client    kubernetes.Interface
	Namespace string
	Pod       string
}

func checkKubernetes(ctx context.Context, r *Report, cfg Config) {
	const s = SectionKubernetes
	k := cfg.Kube
	pod, err := k.Client.CoreV1().Pods(k.Namespace).Get(ctx, k.Pod, metav1.GetOptions{})
	if err != nil {
		fix := "check the pod's name and namespace (kubectl get pods -n " + k.Namespace + ")"
		if apierrors.IsForbidden(err) {
			fix = "these credentials may not read pods in " + k.Namespace + ": run wif doctor --pod with a kubeconfig that may (kubectl auth can-i get pods -n " + k.Namespace + ")"
		}
		r.add(s, "pod", Fail, fmt.Sprintf("pod %s/%s: %v", k.Namespace, k.Pod, err), fix)
		return
	}
	r.add(s, "pod", Pass, fmt.Sprintf("%s/%s, service account %q", pod.Namespace, pod.Name, saName(pod)), "")

	labelled := pod.Labels[webhook.UseLabel] == "true"
	if labelled {
		r.add(s, "label", Pass, webhook.UseLabel+"=true on the pod", "")
	} else {
		detail := "the pod has no " + webhook.UseLabel + "=true label: the webhook leaves it untouched"
		switch v, ok := pod.Labels[webhook.UseLabel]; {
		case ok:
			detail = fmt.Sprintf("the pod's %s label is %q, not \"true\": the webhook leaves it untouched", webhook.UseLabel, v)
		case pod.Annotations[webhook.UseLabel] != "":
			detail = "the pod has " + webhook.UseLabel + " as an annotation, not a label (a label since azure-workload-identity v1.0)"
		}
		fix := "add the label to the pod template (spec.template.metadata.labels), not the workload's own metadata; the pod must then be recreated"
		if where := ownerLabelled(ctx, k.Client, pod); where != "" {
			detail += "; " + where + " has the label in its own metadata.labels, which pods do not inherit"
		}
		r.add(s, "label", Fail, detail, fix)
	}

	sa, err := k.Client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, saName(pod), metav1.GetOptions{})
	switch {
	case err != nil:
		r.add(s, "service account", Fail, fmt.Sprintf("service account %s/%s: %v", pod.Namespace, saName(pod), err), "create the service account the pod names (spec.serviceAccountName)")
	case sa.Annotations[webhook.ClientIDAnnotation] == "":
		r.add(s, "service account", Fail, fmt.Sprintf("%s/%s has no %s annotation: AZURE_CLIENT_ID is not injected", sa.Namespace, sa.Name, webhook.ClientIDAnnotation),
			fmt.Sprintf("kubectl annotate serviceaccount -n %s %s %s=<client id> (wif identity show -n NAME -g GROUP --query clientId -o tsv), then recreate the pod", sa.Namespace, sa.Name, webhook.ClientIDAnnotation))
	case !directory.IsGUID(sa.Annotations[webhook.ClientIDAnnotation]):
		r.add(s, "service account", Fail, fmt.Sprintf("%s/%s's %s is %q, not a GUID", sa.Namespace, sa.Name, webhook.ClientIDAnnotation, clip(sa.Annotations[webhook.ClientIDAnnotation])),
			"set it to the managed identity's client id")
	default:
		r.add(s, "service account", Pass, fmt.Sprintf("%s/%s has %s=%s", sa.Namespace, sa.Name, webhook.ClientIDAnnotation, sa.Annotations[webhook.ClientIDAnnotation]), "")
	}

	missing := notInjected(pod)
	if len(missing) == 0 {
		r.add(s, "injected", Pass, "the webhook injected the environment and the token volume", "")
		return
	}
	detail := "not injected into " + strings.Join(missing, ", ")
	if !labelled {
		r.add(s, "injected", Fail, detail+" (the pod is not labelled)", "label the pod template and recreate the pod")
		return
	}
	why, fix := whyNotInjected(ctx, k.Client, pod)
	r.add(s, "injected", Fail, detail+": "+why, fix)
}

func saName(p *corev1.Pod) string {
	if p.Spec.ServiceAccountName == "" {
		return "default"
	}
	return p.Spec.ServiceAccountName
}

// notInjected lists the containers that lack the token file variable and
// its mount (skip-containers excepted).
func notInjected(p *corev1.Pod) []string {
	skip := map[string]bool{}
	for _, c := range strings.Split(p.Annotations[webhook.SkipContainersAnnotation], ";") {
		skip[strings.TrimSpace(c)] = true
	}
	var out []string
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		if skip[c.Name] || c.Name == webhook.ProxyContainerName || c.Name == webhook.ProxyInitName {
			continue
		}
		has := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == webhook.EnvFederatedToken })
		mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(m.Name, webhook.VolumeNamePrefix) })
		if !has || !mounted {
			out = append(out, "container "+c.Name)
		}
	}
	return out
}

// ownerLabelled names the pod's owner (a ReplicaSet's Deployment, a
// StatefulSet, ...) when it carries the label in its own metadata only.
func ownerLabelled(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Kind != "ReplicaSet" {
			continue
		}
		rs, err := c.AppsV1().ReplicaSets(p.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		if rs.Labels[webhook.UseLabel] == "true" {
			return "replica set " + rs.Name
		}
		for _, ro := range rs.OwnerReferences {
			if ro.Kind == "Deployment" {
				d, err := c.AppsV1().Deployments(p.Namespace).Get(ctx, ro.Name, metav1.GetOptions{})
				if err == nil && d.Labels[webhook.UseLabel] == "true" {
					return "deployment " + d.Name
				}
			}
		}
	}
	return ""
}

// whyNotInjected explains why a labelled pod was admitted untouched: by
// the webhooks that select labelled pods, those whose namespaceSelector
// matches the pod's namespace first.
func whyNotInjected(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) (string, string) {
	cfgs, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "cannot list the mutating webhook configurations (" + err.Error() + ")", "ask a cluster admin to check that the wif webhook is installed"
	}
	var nsLabels labels.Set
	if ns, err := c.CoreV1().Namespaces().Get(ctx, p.Namespace, metav1.GetOptions{}); err == nil {
		nsLabels = labels.Set(ns.Labels)
	}
	var matching, elsewhere []string
	for _, cfg := range cfgs.Items {
		for _, wh := range cfg.Webhooks {
			if !isWIFWebhook(wh) {
				continue
			}
			if wh.NamespaceSelector != nil && nsLabels != nil {
				if sel, err := metav1.LabelSelectorAsSelector(wh.NamespaceSelector); err == nil && !sel.Matches(nsLabels) {
					elsewhere = append(elsewhere, fmt.Sprintf("%s (namespaceSelector %s)", cfg.Name, sel))
					continue
				}
			}
			matching = append(matching, cfg.Name)
			if p.CreationTimestamp.Before(&cfg.CreationTimestamp) {
				return fmt.Sprintf("the pod was created at %s, before webhook configuration %s (%s)", p.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"), cfg.Name,
					cfg.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z")), "recreate the pod (kubectl delete pod; its controller makes a new one)"
			}
			if wh.FailurePolicy != nil && *wh.FailurePolicy == admregv1.Ignore {
				return fmt.Sprintf("webhook configuration %s has failurePolicy Ignore: the webhook was likely down or timed out when the pod was created, and the pod was admitted untouched", cfg.Name),
					"check the webhook's pods and logs, then recreate the pod; failurePolicy Fail (the chart's default) refuses such pods instead"
			}
		}
	}
	switch {
	case len(matching) > 0:
		return "the webhook (" + strings.Join(matching, ", ") + ") matches this pod now; it was likely labelled, or the service account annotated, after it was created",
			"recreate the pod: the webhook acts only when a pod is created"
	case len(elsewhere) > 0:
		return fmt.Sprintf("namespace %s matches no webhook's namespaceSelector: %s", p.Namespace, strings.Join(elsewhere, "; ")),
			"run the pod in a namespace the webhook covers, or change its namespaceSelector (chart value webhook.excludeNamespaces), then recreate the pod"
	}
	return "no mutating webhook configuration selects " + webhook.UseLabel + "=true pods: the webhook is not installed",
		"install the webhook (helm install wif deploy/helm/wif, or wif webhook) and recreate the pod"
}

// isWIFWebhook reports whether a webhook is Azure Workload Identity's (or
// wif's): by name, or by an object selector on the use label.
func isWIFWebhook(wh admregv1.MutatingWebhook) bool {
	if wh.Name == "mutation.azure-workload-identity.io" {
		return true
	}
	if wh.ObjectSelector == nil {
		return false
	}
	if _, ok := wh.ObjectSelector.MatchLabels[webhook.UseLabel]; ok {
		return true
	}
	return slices.ContainsFunc(wh.ObjectSelector.MatchExpressions, func(e metav1.LabelSelectorRequirement) bool { return e.Key == webhook.UseLabel })
}

// checkInPod says, inside a pod (KUBERNETES_SERVICE_HOST set), whether
// this container was injected, and how to find out why not: a pod's own
// service account may seldom read pods or webhook configurations.
func checkInPod(r *Report, cfg Config) {
	if v, _ := cfg.LookupEnv("KUBERNETES_SERVICE_HOST"); v == "" {
		return
	}
	host, _ := cfg.LookupEnv("HOSTNAME")
	if host == "" {
		host = "POD"
	}
	tf, _ := cfg.LookupEnv(webhook.EnvFederatedToken)
	if tf != "" {
		r.add(SectionKubernetes, "injected", Pass, "this container has "+webhook.EnvFederatedToken+" (the webhook injected it, or the pod spec sets it)", "")
		return
	}
	r.add(SectionKubernetes, "injected", Fail, "in a pod, but this container was not injected",
		"from a machine with a kubeconfig, run: wif doctor --pod "+host+" -n <namespace> — it says why (label, service account, webhook)")
}
