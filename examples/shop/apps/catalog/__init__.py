"""catalog: the books for sale, over gRPC (`catalog.Catalog`)."""
