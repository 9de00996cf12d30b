import type { GeoPoint } from './geo.js';

/** A region preset: the id a node is configured with (`SFU_REGION`) and where it is. */
export interface RegionPreset extends GeoPoint {
  readonly id: string;
  readonly name: string;
}

// Coordinates are the metro area's usual data-centre location (for `iad` Ashburn, not
// Washington), rounded to 2 decimals (~1 km): routing needs the city, not the building.
const PRESETS: readonly RegionPreset[] = [
  { id: 'ams', name: 'Amsterdam', latitude: 52.37, longitude: 4.9 },
  { id: 'fra', name: 'Frankfurt', latitude: 50.11, longitude: 8.68 },
  { id: 'lon', name: 'London', latitude: 51.51, longitude: -0.13 },
  { id: 'par', name: 'Paris', latitude: 48.86, longitude: 2.35 },
  { id: 'mad', name: 'Madrid', latitude: 40.42, longitude: -3.7 },
  { id: 'sto', name: 'Stockholm', latitude: 59.33, longitude: 18.07 },
  { id: 'waw', name: 'Warsaw', latitude: 52.23, longitude: 21.01 },
  { id: 'sin', name: 'Singapore', latitude: 1.35, longitude: 103.82 },
  { id: 'hcm', name: 'Ho Chi Minh City', latitude: 10.82, longitude: 106.63 },
  { id: 'han', name: 'Hanoi', latitude: 21.03, longitude: 105.85 },
  { id: 'hkg', name: 'Hong Kong', latitude: 22.32, longitude: 114.17 },
  { id: 'tyo', name: 'Tokyo', latitude: 35.68, longitude: 139.69 },
  { id: 'icn', name: 'Seoul', latitude: 37.57, longitude: 126.98 },
  { id: 'bom', name: 'Mumbai', latitude: 19.08, longitude: 72.88 },
  { id: 'dxb', name: 'Dubai', latitude: 25.2, longitude: 55.27 },
  { id: 'syd', name: 'Sydney', latitude: -33.87, longitude: 151.21 },
  { id: 'iad', name: 'US East (Ashburn)', latitude: 39.04, longitude: -77.49 },
  { id: 'ord', name: 'Chicago', latitude: 41.88, longitude: -87.63 },
  { id: 'dfw', name: 'Dallas', latitude: 32.78, longitude: -96.8 },
  { id: 'sfo', name: 'US West (San Francisco)', latitude: 37.77, longitude: -122.42 },
  { id: 'sea', name: 'Seattle', latitude: 47.61, longitude: -122.33 },
  { id: 'yyz', name: 'Toronto', latitude: 43.65, longitude: -79.38 },
  { id: 'gru', name: 'São Paulo', latitude: -23.55, longitude: -46.63 },
  { id: 'jnb', name: 'Johannesburg', latitude: -26.2, longitude: 28.05 },
];

/** The region presets by id. A node in another region gives its coordinates explicitly. */
export const REGIONS: Readonly<Record<string, RegionPreset>> = Object.freeze(
  Object.fromEntries(PRESETS.map((p) => [p.id, Object.freeze(p)])),
);

/** The preset of a region id, or undefined for a region that is not in the table. */
export function regionPreset(region: string): RegionPreset | undefined {
  return Object.hasOwn(REGIONS, region) ? REGIONS[region] : undefined;
}

/** Where a preset region is, or undefined for a region that is not in the table. */
export function regionLocation(region: string): GeoPoint | undefined {
  const preset = regionPreset(region);
  return preset ? { latitude: preset.latitude, longitude: preset.longitude } : undefined;
}
