-- kuberds takes this server back in hand.
obj.spec.automationPaused = false
return obj
