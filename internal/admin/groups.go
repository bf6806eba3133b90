package admin

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// ResourceGroupType is ARM's type of a resource group.
const ResourceGroupType = "Microsoft.Resources/resourceGroups"

// ResourceGroupProperties are a resource group's ARM properties.
type ResourceGroupProperties struct {
	ProvisioningState string `json:"provisioningState"`
}

// ResourceGroupResource is a resource group as ARM returns it. Implicit is
// wif's: the group is not stored but holds identities (created by the
// admin API or apply, which need no group); a PUT stores it.
type ResourceGroupResource struct {
	ID         string                   `json:"id,omitempty"`
	Name       string                   `json:"name,omitempty"`
	Type       string                   `json:"type,omitempty"`
	Location   string                   `json:"location"`
	Tags       map[string]string        `json:"tags,omitempty"`
	Properties *ResourceGroupProperties `json:"properties,omitempty"`
	Implicit   bool                     `json:"implicit,omitempty"`
	ETag       string                   `json:"etag,omitempty"`
}

func resourceGroupResource(g directory.ResourceGroup, implicit bool) ResourceGroupResource {
	out := ResourceGroupResource{ID: g.ResourceID(), Name: g.Name, Type: ResourceGroupType, Location: g.Location, Tags: g.Tags,
		Properties: &ResourceGroupProperties{ProvisioningState: "Succeeded"}, Implicit: implicit}
	if !implicit {
		out.ETag = ETag(g.Version)
	}
	return out
}

func (h *Handler) groupRef(r *http.Request) (tid, sub, name string, err error) {
	tid, err = h.tenantID(r)
	if err != nil {
		return "", "", "", err
	}
	sub = r.PathValue("subscriptionId")
	if !directory.IsGUID(sub) {
		return "", "", "", &directory.ValidationError{Field: "subscriptionId", Rule: "must be a GUID", Value: sub}
	}
	return tid, directory.CanonicalID(sub), r.PathValue("resourceGroup"), nil
}

// subscriptionGroups are the groups of one subscription: the stored ones
// and those only implied by the identities in them (with the location of
// their first identity), by lower-case name.
func (h *Handler) subscriptionGroups(r *http.Request, tid, sub string) (map[string]ResourceGroupResource, error) {
	gs, err := h.cfg.Store.ListResourceGroups(r.Context(), tid)
	if err != nil {
		return nil, err
	}
	out := map[string]ResourceGroupResource{}
	for _, g := range gs {
		if g.SubscriptionID == sub {
			out[lower(g.Name)] = resourceGroupResource(g, false)
		}
	}
	ms, err := h.cfg.Store.ListManagedIdentities(r.Context(), tid, store.IdentityFilter{SubscriptionID: sub})
	if err != nil {
		return nil, err
	}
	sort.Slice(ms, func(i, j int) bool { return lower(ms[i].Name) < lower(ms[j].Name) })
	for _, m := range ms {
		if _, ok := out[lower(m.ResourceGroup)]; !ok {
			out[lower(m.ResourceGroup)] = resourceGroupResource(directory.ResourceGroup{SubscriptionID: sub, Name: m.ResourceGroup, Location: m.Location}, true)
		}
	}
	return out, nil
}

func (h *Handler) listGroups(w http.ResponseWriter, r *http.Request) error {
	tid, sub, _, err := h.groupRef(r)
	if err != nil {
		return err
	}
	if err := h.tenantExists(r, tid); err != nil {
		return err
	}
	gs, err := h.subscriptionGroups(r, tid, sub)
	if err != nil {
		return err
	}
	out := make([]ResourceGroupResource, 0, len(gs))
	for _, g := range gs {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return lower(out[i].Name) < lower(out[j].Name) })
	return page(w, r, out)
}

func groupNotFound(name, sub string) error {
	return errorf(http.StatusNotFound, CodeNotFound, "the resource group %q does not exist in subscription %s", name, sub)
}

func (h *Handler) getGroup(w http.ResponseWriter, r *http.Request) error {
	tid, sub, name, err := h.groupRef(r)
	if err != nil {
		return err
	}
	g, err := h.cfg.Store.GetResourceGroup(r.Context(), tid, sub, name)
	if err == nil {
		return respond(w, http.StatusOK, ETag(g.Version), resourceGroupResource(g, false))
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	gs, err := h.subscriptionGroups(r, tid, sub)
	if errors.Is(err, store.ErrNotFound) {
		return groupNotFound(name, sub)
	}
	if err != nil {
		return err
	}
	if g, ok := gs[lower(name)]; ok {
		return respond(w, http.StatusOK, "", g)
	}
	return groupNotFound(name, sub)
}

// groupPut is the body of a resource group's PUT (location is required,
// as ARM requires it) or PATCH (tags).
type groupPut struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Name       string            `json:"name,omitempty"`
	Properties map[string]any    `json:"properties,omitempty"`
}

func (h *Handler) putGroup(w http.ResponseWriter, r *http.Request) error {
	tid, sub, name, err := h.groupRef(r)
	if err != nil {
		return err
	}
	var in groupPut
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name != "" && !strings.EqualFold(in.Name, name) {
		return &directory.ValidationError{Field: "name", Rule: "must match the name in the path, " + name, Value: in.Name}
	}
	if in.Location == nil || *in.Location == "" {
		return &directory.ValidationError{Field: "location", Rule: "is required"}
	}
	ctx := r.Context()
	_, err = h.cfg.Store.GetResourceGroup(ctx, tid, sub, name)
	if errors.Is(err, store.ErrNotFound) {
		if err := putPreconditions(r, fmt.Sprintf("resource group %q", name), false); err != nil {
			return err
		}
		g, err := h.cfg.Store.CreateResourceGroup(ctx, directory.ResourceGroup{TenantID: tid, SubscriptionID: sub, Name: name, Location: *in.Location, Tags: in.Tags})
		if err != nil {
			return notFound(err, "tenant %s", tid)
		}
		return respond(w, http.StatusCreated, ETag(g.Version), resourceGroupResource(g, false))
	} else if err != nil {
		return err
	}
	if err := putPreconditions(r, fmt.Sprintf("resource group %q", name), true); err != nil {
		return err
	}
	g, err := h.cfg.Store.UpdateResourceGroup(ctx, tid, sub, name, func(g *directory.ResourceGroup) error {
		if err := ifMatch(r, g.Version); err != nil {
			return err
		}
		if err := staysPut(*g, in.Location); err != nil {
			return err
		}
		g.Tags = in.Tags
		return nil
	})
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, ETag(g.Version), resourceGroupResource(g, false))
}

// staysPut refuses a location other than the group's: ARM does not move
// resource groups (nil asks for no change).
func staysPut(g directory.ResourceGroup, loc *string) error {
	if loc == nil || strings.EqualFold(*loc, g.Location) {
		return nil
	}
	return errorf(http.StatusConflict, CodeConflict, "the resource group %q is in location %q and cannot move to %q", g.Name, g.Location, clipText(*loc, 64))
}

func (h *Handler) patchGroup(w http.ResponseWriter, r *http.Request) error {
	tid, sub, name, err := h.groupRef(r)
	if err != nil {
		return err
	}
	var in groupPut
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	g, err := h.cfg.Store.UpdateResourceGroup(r.Context(), tid, sub, name, func(g *directory.ResourceGroup) error {
		if err := ifMatch(r, g.Version); err != nil {
			return err
		}
		if err := staysPut(*g, in.Location); err != nil {
			return err
		}
		if in.Tags != nil {
			g.Tags = in.Tags
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return groupNotFound(name, sub)
	}
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, ETag(g.Version), resourceGroupResource(g, false))
}

// deleteGroup deletes a stored, empty group; one that still holds
// identities is refused (Resource Manager's surface deletes them first,
// each as its own DELETE).
func (h *Handler) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	tid, sub, name, err := h.groupRef(r)
	if err != nil {
		return err
	}
	ms, err := h.cfg.Store.ListManagedIdentities(r.Context(), tid, store.IdentityFilter{SubscriptionID: sub, ResourceGroup: name})
	if errors.Is(err, store.ErrNotFound) {
		return groupNotFound(name, sub)
	}
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		return errorf(http.StatusConflict, CodeConflict, "the resource group %q still holds %d managed identities (%s first); delete them before the group", name, len(ms), ms[0].Name)
	}
	err = h.cfg.Store.DeleteResourceGroup(r.Context(), tid, sub, name, ifMatchDelete(r))
	if errors.Is(err, store.ErrNotFound) {
		return groupNotFound(name, sub)
	}
	if err != nil {
		return err
	}
	return noContent(w)
}

// listTenantIdentities lists every identity of the tenant, in every
// subscription (what Graph's service principal list reads).
func (h *Handler) listTenantIdentities(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	if err := h.tenantExists(r, tid); err != nil {
		return err
	}
	return h.pageIdentities(w, r, tid, store.IdentityFilter{})
}
