//! What the three EventBridge kinds (`Connection`, `ApiDestination`, `Rule`) share.
