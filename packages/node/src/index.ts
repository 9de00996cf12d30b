export { NodeMetrics } from './metrics.js';
export { Participant } from './Participant.js';
export { KEYFRAME_REQUEST_GAP_MS, Publication, type PublicationSource } from './Publication.js';
export { Room } from './Room.js';
export { type NodeState, SfuNode, type SfuNodeEvents, VERSION } from './SfuNode.js';
export { SignalConnection } from './SignalConnection.js';
export { Subscription } from './Subscription.js';
export { iceServersFor, turnCredential } from './turnCredentials.js';
