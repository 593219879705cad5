//! `pbp ingest`, `pbp enrich`, `pbp serve` and `pbp run`: the pipelines as processes. Each runs until Ctrl-C or
//! SIGTERM, then finishes the batch in flight, commits and exits.

use std::sync::Arc;

use clap::Args;
use pbp_dataflow::{Shutdown, Transport};
use tokio::task::JoinSet;

use super::common::{EspnArgs, Metrics, ServiceArgs};
use crate::pipelines::{DynPipeline, enrich, live, serve};

/// Options of `pbp ingest`.
#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    espn: EspnArgs,
}

/// Options of `pbp enrich`.
#[derive(Debug, Args)]
pub(crate) struct EnrichArgs {
    #[command(flatten)]
    services: ServiceArgs,
}

/// Options of `pbp serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    services: ServiceArgs,
}

/// Options of `pbp run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    espn: EspnArgs,
}

pub(crate) async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    args.services.require_shared_log("ingest")?;
    let transport = args.services.connect_transport()?;
    let registry = args.services.registry()?;
    let mut metrics = Metrics::new();
    live::run_ingest(&transport, registry, &args.espn, &mut metrics.registry, Shutdown::on_signals()).await?;
    Ok(())
}

pub(crate) async fn enrich(args: EnrichArgs) -> anyhow::Result<()> {
    args.services.require_shared_log("enrich")?;
    let transport = args.services.connect_transport()?;
    let shutdown = Shutdown::on_signals();
    let metrics = Metrics::new();
    let pipelines = vec![enrich_pipeline(&args.services, &transport, &metrics).await?];
    run_all(pipelines, shutdown).await
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    args.services.require_shared_log("serve")?;
    let transport = args.services.connect_transport()?;
    let shutdown = Shutdown::on_signals();
    let metrics = Metrics::new();
    let pipelines = serve_pipelines(&args.services, &transport, &metrics).await?;
    run_all(pipelines, shutdown).await
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let transport = args.services.connect_transport()?;
    let registry = args.services.registry()?;
    let shutdown = Shutdown::on_signals();
    let mut metrics = Metrics::new();
    let mut pipelines = vec![enrich_pipeline_with(&args.services, &transport, &metrics, registry.clone()).await?];
    pipelines.extend(serve_pipelines_with(&args.services, &transport, &metrics, registry.clone()).await?);
    // Groups are joined before ingest writes, so that the embedded log keeps every record for them.
    for pipeline in &mut pipelines {
        pipeline.open().await?;
    }
    match &args.services.database_url {
        Some(_) => tracing::info!("Storing into PostgreSQL."),
        None => tracing::info!(data_dir = %args.services.data_dir.display(), "Storing into the embedded database."),
    }
    let pipelines = tokio::spawn(run_all(pipelines, shutdown.clone()));
    let ingested = live::run_ingest(&transport, registry, &args.espn, &mut metrics.registry, shutdown.clone()).await;
    // Ingest stops on shutdown (or on error): stop the rest too.
    shutdown.trigger();
    let ran = pipelines.await?;
    ingested?;
    ran
}

async fn enrich_pipeline(
    services: &ServiceArgs,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
) -> anyhow::Result<Box<dyn DynPipeline>> {
    enrich_pipeline_with(services, transport, metrics, services.registry()?).await
}

async fn enrich_pipeline_with(
    services: &ServiceArgs,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
    registry: Arc<dyn pbp_avro::SchemaRegistry>,
) -> anyhow::Result<Box<dyn DynPipeline>> {
    crate::topics::ensure_all(transport.as_ref()).await?;
    let codecs = enrich::EnrichCodecs::register(registry).await?;
    Ok(Box::new(enrich::pipeline(transport.clone(), codecs, services.pipeline_config(), metrics.dataflow.clone())))
}

async fn serve_pipelines(
    services: &ServiceArgs,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
) -> anyhow::Result<Vec<Box<dyn DynPipeline>>> {
    serve_pipelines_with(services, transport, metrics, services.registry()?).await
}

pub(crate) async fn serve_pipelines_with(
    services: &ServiceArgs,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
    registry: Arc<dyn pbp_avro::SchemaRegistry>,
) -> anyhow::Result<Vec<Box<dyn DynPipeline>>> {
    crate::topics::ensure_all(transport.as_ref()).await?;
    let repository = services.repository().await?;
    serve::pipelines(
        transport.clone(),
        registry,
        repository,
        services.pipeline_config(),
        metrics.dataflow.clone(),
        services.parent_wait(),
    )
    .await
}

/// Runs every pipeline until `shutdown`; the first failure stops the others.
pub(crate) async fn run_all(pipelines: Vec<Box<dyn DynPipeline>>, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut running = JoinSet::new();
    for pipeline in pipelines {
        let name = pipeline.name().to_owned();
        let shutdown = shutdown.clone();
        running.spawn(async move { (name, pipeline.run(shutdown).await) });
    }
    let mut first_error = None;
    while let Some(ended) = running.join_next().await {
        let (name, result) = ended?;
        match result {
            Ok(stats) => tracing::info!(pipeline = name, ?stats, "Pipeline finished."),
            Err(error) => {
                tracing::error!(pipeline = name, %error, "Pipeline failed; stopping the others.");
                shutdown.trigger();
                first_error.get_or_insert(anyhow::Error::new(error).context(format!("pipeline {name} failed")));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
