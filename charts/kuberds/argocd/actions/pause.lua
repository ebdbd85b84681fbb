-- kuberds stops changing this server (maintenance by hand); Argo CD then shows it Suspended.
obj.spec.automationPaused = true
return obj
