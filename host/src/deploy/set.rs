//! How a new filter set reaches the running pipeline: [`Desired`] holds
//! the config's and the uploads' deployments and sends each whole set,
//! numbered; the pipeline takes the newest through [`Updates`] and runs
//! it as a [`FilterSet`], and counts what it has published so that a
//! change (an upload's answer) can wait until it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use super::Deployment;
use crate::decode::{Decoder, SchemaSource};
use crate::runner::{HostFields, Runner};
use crate::sandbox::LoadedFilter;
use crate::sky::Sky;

/// One version of the set of deployed filters, with a decoder made for
/// exactly their fields.
pub struct FilterSet {
    pub generation: u64,
    pub deployments: Vec<Deployment>,
    pub decoder: Arc<Decoder>,
    /// The history columns kept (the same for every set of a process),
    /// the catalogues, and the sky maps and watchlists (which groups'
    /// uploads change from one set to the next).
    pub host: HostFields,
    /// Per deployment, the versions of the maps and watchlists it reads,
    /// as its outputs' `bandpass-sky` header says them.
    pub sky_read: Vec<Option<String>>,
}

impl FilterSet {
    pub fn new(
        generation: u64,
        deployments: Vec<Deployment>,
        schemas: SchemaSource,
        host: HostFields,
    ) -> FilterSet {
        Deployment::name_filters(&deployments);
        let decoder = Runner::decoder_for(&FilterSet::loaded(&deployments), schemas, &host);
        let sky_read = deployments
            .iter()
            .map(|d| {
                host.sky
                    .versions_read(d.filter.sky_group(), &d.filter.fields)
            })
            .collect();
        FilterSet {
            generation,
            deployments,
            decoder,
            host,
            sky_read,
        }
    }

    fn loaded(deployments: &[Deployment]) -> Vec<Arc<LoadedFilter>> {
        deployments.iter().map(|d| d.filter.clone()).collect()
    }

    /// The loaded filters, in deployment order.
    pub fn filters(&self) -> Vec<Arc<LoadedFilter>> {
        FilterSet::loaded(&self.deployments)
    }
}

/// The filter set that should run, and where it comes from: the config
/// file's filters (replaced on SIGHUP) and the uploaded ones (replaced
/// when the fleet registry changes). Either change hands the whole set to the pipeline,
/// numbered, and the pipeline counts the sets it has published, so that
/// a change can wait until it runs.
pub struct Desired {
    pub config: Vec<Deployment>,
    pub uploaded: Vec<Deployment>,
    /// The catalogues, and the sky maps and watchlists: the config's, and
    /// the groups' uploaded ones (replaced when the registry changes).
    pub sky: Arc<Sky>,
    sets: Sender<(u64, Vec<Deployment>, Arc<Sky>)>,
    sent: u64,
    published: Arc<AtomicU64>,
}

/// The pipeline's end of [`Desired`].
pub struct Updates {
    sets: Receiver<(u64, Vec<Deployment>, Arc<Sky>)>,
    /// The number of the latest set published.
    published: Arc<AtomicU64>,
}

impl Desired {
    pub fn new(config: Vec<Deployment>, sky: Arc<Sky>) -> (Desired, Updates) {
        let (sets, receiver) = std::sync::mpsc::channel();
        let published = Arc::new(AtomicU64::new(0));
        let sources = Desired {
            config,
            uploaded: Vec::new(),
            sky,
            sets,
            sent: 0,
            published: published.clone(),
        };
        (
            sources,
            Updates {
                sets: receiver,
                published,
            },
        )
    }

    /// The whole set: the config's filters, then the uploaded ones.
    pub fn all(&self) -> Vec<Deployment> {
        self.config.iter().chain(&self.uploaded).cloned().collect()
    }

    /// The set to start the pipeline with. Sets sent before it (queued
    /// already) are older: the pipeline counts them published, unused.
    pub fn initial(&self) -> Vec<Deployment> {
        self.published.store(self.sent, Ordering::Release);
        self.all()
    }

    /// Replaces the config's filters; returns the set's number.
    pub fn set_config(&mut self, deployments: Vec<Deployment>) -> u64 {
        self.config = deployments;
        self.send()
    }

    /// Replaces the uploaded filters and the sky they see; returns the
    /// set's number.
    pub fn set_uploaded(&mut self, deployments: Vec<Deployment>, sky: Arc<Sky>) -> u64 {
        self.uploaded = deployments;
        self.sky = sky;
        self.send()
    }

    /// The number of the latest set the pipeline has published: set `n`
    /// runs once this is at least `n`.
    pub fn published(&self) -> Arc<AtomicU64> {
        self.published.clone()
    }

    fn send(&mut self) -> u64 {
        self.sent += 1;
        let _ = self.sets.send((self.sent, self.all(), self.sky.clone()));
        self.sent
    }
}

impl Updates {
    /// Publishes the newest set sent, if it is newer than the one
    /// running: `publish` runs it, then the set counts as published (in
    /// that order: an upload's answer waits for the count).
    pub fn apply(&self, publish: impl FnOnce(Vec<Deployment>, Arc<Sky>)) {
        if let Ok((seq, deployments, sky)) = self.sets.try_recv()
            && seq > self.published.load(Ordering::Acquire)
        {
            publish(deployments, sky);
            self.published.store(seq, Ordering::Release);
        }
    }
}
