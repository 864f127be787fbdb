"""``workbench manifests``: the Kubernetes manifests of a deployment, as YAML for GitOps."""

from __future__ import annotations

import click


@click.command()
@click.argument("model_uri")
@click.option("--image", required=True, help="Image of MODEL_URI in a registry the cluster pulls from.")
@click.option("--kserve", is_flag=True, help="One KServe InferenceService instead of Deployment, Service, HPA, PDB.")
@click.option("--name", help="Deployment name (default: from the model name).")
@click.option("--namespace", help="Namespace written into every manifest (default: none; `kubectl apply -n` decides).")
@click.option("--replicas", type=int, default=2, show_default=True, help="Pods per version (the autoscaler's floor).")
@click.option("--max-replicas", type=int, help="The autoscaler's ceiling (default: 3 x replicas).")
@click.option("--requests", help="Resource requests, e.g. cpu=500m,memory=1Gi (default: cpu 250m, memory from "
                                 "the model's size and the server's footprint).")
@click.option("--limits", help="Resource limits, e.g. memory=2Gi (default: memory twice the request, no CPU limit).")
@click.option("--gateway", help="Gateway (NAME or NAMESPACE/NAME) for the HTTPRoute (default: the Service: a mesh).")
@click.option("--hostname", "hostnames", multiple=True, help="Host name the HTTPRoute answers for (repeatable).")
@click.option("--challenger", "challenger_uri", metavar="MODEL_URI", help="A version to serve beside MODEL_URI.")
@click.option("--challenger-image", help="Image of the challenger (needed with --challenger).")
@click.option("--share", type=float, default=0.1, show_default=True, help="Share of requests for the challenger.")
@click.option("--shadow", is_flag=True, help="Mirror every request to the challenger; only MODEL_URI answers.")
@click.option("--strategy", type=click.Choice(["thompson", "epsilon_greedy"]),
              help="Share requests by the rewards fed back (a bandit, through the router).")
@click.option("--epsilon", type=float, help="With --strategy epsilon_greedy: the share explored (default 0.1).")
@click.option("--log-secret", metavar="SECRET", help="Secret whose key 'url' holds the shared prediction-log store's "
                                                     "postgresql:// URL (every pod writes there).")
@click.option("--log-claim", metavar="CLAIM", help="A ReadWriteMany PersistentVolumeClaim for the prediction log, "
                                                   "without a store.")
@click.option("--router/--no-router", default=True, show_default=True,
              help="The workbench router in front of the versions (--no-router: an HTTPRoute shares traffic).")
@click.option("--router-replicas", type=int, default=2, show_default=True, help="Router pods.")
@click.option("--router-image", help="The router's image (default: IMAGE).")
def manifests(model_uri: str, image: str, kserve: bool, name: str | None, namespace: str | None, replicas: int,
              max_replicas: int | None, requests: str | None, limits: str | None, gateway: str | None,
              hostnames: tuple[str, ...], challenger_uri: str | None, challenger_image: str | None, share: float,
              shadow: bool, strategy: str | None, epsilon: float | None, log_secret: str | None,
              log_claim: str | None, router: bool, router_replicas: int, router_image: str | None) -> None:
    """Print the Kubernetes manifests that serve MODEL_URI from IMAGE (multi-document YAML).

    The same manifests `wb.deploy(..., target="k8s://CONTEXT/NAMESPACE")` applies: commit them to a
    GitOps repository, or `workbench manifests ... | kubectl apply -f -`. More than one pod per version
    needs --log-secret (the shared store) or --log-claim. The router's admin token Secret is not
    printed (no secret in a repository); without it the router's routes change only through its ConfigMap.
    """
    from workbench.config import get_settings
    from workbench.deployment.base import DeploymentSpec, TrafficPolicy
    from workbench.deployment.targets.kubernetes import build_manifests, manifests_yaml
    from workbench.deployment.manager import default_name, resolve_model
    from workbench.errors import InvalidInputError
    from workbench.registry import model_size

    if challenger_uri and not challenger_image:
        raise InvalidInputError("--challenger needs --challenger-image: the image the cluster pulls for it")
    if challenger_image and not challenger_uri:
        raise InvalidInputError("--challenger-image goes with --challenger MODEL_URI")
    if (strategy or epsilon is not None) and not challenger_uri:
        raise InvalidInputError("--strategy and --epsilon choose how a challenger shares traffic: add --challenger")
    if strategy and shadow:
        raise InvalidInputError("--shadow and --strategy are two ways to share traffic: give one")
    exact, model_name, version = resolve_model(model_uri)
    name = name or default_name(model_name)
    options = {"namespace": namespace, "replicas": replicas, "max_replicas": max_replicas, "requests": requests,
               "limits": limits, "kserve": kserve, "gateway": gateway, "hostnames": list(hostnames),
               "log_secret": log_secret, "log_claim": log_claim, "router": router, "router_replicas": router_replicas,
               "router_image": router_image}
    workdir = get_settings().deployments_dir / name
    spec = DeploymentSpec(name=name, model_uri=exact, model_name=model_name, model_version=version, revision=1,
                          workdir=workdir, options={k: v for k, v in options.items() if v not in (None, [])})
    second = policy = None
    challenger_bytes = None
    header = [f"Generated by `workbench manifests` for {exact} (image {image})."]
    if challenger_uri:
        c_exact, c_name, c_version = resolve_model(challenger_uri)
        second = DeploymentSpec(name=name, model_uri=c_exact, model_name=c_name, model_version=c_version,
                                revision=2, workdir=workdir, options={})
        if strategy:
            policy = TrafficPolicy.bandit(strategy, epsilon)
        else:
            policy = TrafficPolicy(mode="shadow" if shadow else "split", challenger_share=share)
        challenger_bytes = model_size(c_exact)
        if kserve:
            header.append(f"KServe canary: apply once {exact} is ready; {round(share * 100)}% of requests then go "
                          f"to {c_exact}, the rest to the revision before.")
        else:
            how = ("every request is mirrored to it." if shadow else f"{strategy} bandit, by the rewards fed back."
                   if strategy else f"{share:g} of requests.")
            header.append(f"Challenger {c_exact} (image {challenger_image}): {how}")
    if router and not kserve:
        header.append(f"The router ({name}-router) answers at Service {name}; its routes are ConfigMap {name}-router.")
    docs = build_manifests(spec, image, challenger=second, challenger_image=challenger_image, policy=policy,
                           model_bytes=model_size(exact), challenger_model_bytes=challenger_bytes)
    click.echo(manifests_yaml(docs, header="\n".join(header)), nl=False)


COMMANDS = [manifests]
