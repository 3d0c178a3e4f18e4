"""What differs between the Ray and vLLM releases this package supports: the supported
ranges (:mod:`.versions`) and the few Ray Data calls that changed (:mod:`.ray_data`)."""
