package reeval

// Known returns the inventory hash the engine holds for each resource it knows (model.Resource
// .InventoryHash as last submitted; "" when the submitter gave none). A server process compares
// it with the stored hashes to find inventories another process received.
func (e *Engine) Known() map[Ref]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[Ref]string, len(e.handles))
	for ref, h := range e.handles {
		out[ref] = e.entries[h].resource.InventoryHash
	}
	return out
}

// Hash returns the inventory hash the engine holds for one resource (ok false if it does not know it).
func (e *Engine) Hash(ref Ref) (hash string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.handles[ref]
	if !ok {
		return "", false
	}
	return e.entries[h].resource.InventoryHash, true
}
