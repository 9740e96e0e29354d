"""Image build and real-node test tier (kubelet + containerd + runc): see tests/cluster/README.md."""
