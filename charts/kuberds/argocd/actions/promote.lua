-- The replica stops replicating and becomes a standalone writable server (cannot be undone).
obj.spec.promote = true
return obj
