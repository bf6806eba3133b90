# Test-only stand-in for az >= 2.54's `core.instance_discovery` setting
# (AZURE_CORE_INSTANCE_DISCOVERY=false): az 2.45 cannot switch off MSAL's
# instance discovery, which asks login.microsoftonline.com about the host.
import os
if os.environ.get("AZURE_CORE_INSTANCE_DISCOVERY", "").lower() == "false":
    import msal.application as _app
    _init = _app.ClientApplication.__init__
    def _no_discovery(self, *a, **kw):
        kw["instance_discovery"] = False
        _init(self, *a, **kw)
    _app.ClientApplication.__init__ = _no_discovery
