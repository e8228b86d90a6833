//! rampart-loadgen: Synthetic attack traffic with its ground truth
