// Node module hooks for the build's check step (build.js, `check`): the
// author's `import ... from '@bandpass/filter'` resolves to this package
// even where it is not installed beside the filter (the repository's
// sample filters).

let index;

export function initialize(data) {
  index = data.index;
}

export async function resolve(specifier, context, next) {
  if (specifier === '@bandpass/filter') return { url: index, shortCircuit: true };
  return next(specifier, context);
}
