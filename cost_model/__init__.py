"""Cost model: price catalog, GPU specs, performance and spot models, fleet planner and simulator."""
