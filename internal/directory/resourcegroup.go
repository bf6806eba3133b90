package directory

import (
	"errors"
	"strings"
)

// ResourceGroup is a resource group of a subscription, as Azure Resource
// Manager has them: the container its tools create before the managed
// identities in it (az group create, Terraform's azurerm_resource_group).
// The admin API and apply do not need one to exist; Resource Manager's
// surface does, as ARM does (ResourceGroupNotFound). A group also exists
// implicitly while it holds an identity.
type ResourceGroup struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	// Name is unique per subscription (case-insensitively) and immutable.
	Name     string            `json:"name"`
	Location string            `json:"location,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	Meta
}

// Key is the group's name unique per tenant: subscription and name.
func (g ResourceGroup) Key() string {
	return strings.ToLower(CanonicalID(g.SubscriptionID) + "/" + g.Name)
}

// ResourceID is the group's ARM resource id.
func (g ResourceGroup) ResourceID() string {
	return "/subscriptions/" + g.SubscriptionID + "/resourceGroups/" + g.Name
}

// Validate checks a resource group.
func (g ResourceGroup) Validate() error {
	var c checker
	c.guid("tenantId", g.TenantID)
	c.guid("subscriptionId", g.SubscriptionID)
	c.resourceGroup("name", g.Name)
	c.maxLen("location", g.Location, MaxLocationLen)
	c.tags(g.Tags)
	return c.err()
}

// ARM's bounds on a resource's location and tags.
const (
	MaxLocationLen = 64
	MaxTags        = 50
)

// ErrCredentialLimit marks the refusal of a federated credential beyond the
// most one identity or application may hold (Entra: 20); ARM answers it
// 409 Conflict.
var ErrCredentialLimit = errors.New("federated credential limit reached")
