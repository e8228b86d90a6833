//! TODO(helper core-agg)
