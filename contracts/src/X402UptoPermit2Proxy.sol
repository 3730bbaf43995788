// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ISignatureTransfer} from "./ISignatureTransfer.sol";

/// @title The x402 `upto` Permit2 proxy, for dev chains
/// @notice The spender that x402 `upto` signatures name: it moves at most the signed maximum from the payer to
///         the witness's `to`, and only when called by the witness's `facilitator`, so neither the destination
///         nor the settling party can be changed by whoever relays the signature. Written from the x402 `upto`
///         EVM scheme and the official SDK's witness type; placed at the SDK's canonical address with
///         `anvil_setCode`, so it keeps no constructor state (Permit2's address is a constant).
contract X402UptoPermit2Proxy {
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    /// @notice The canonical Permit2 address (the same on every EVM chain).
    ISignatureTransfer public constant PERMIT2 = ISignatureTransfer(0x000000000022D473030F116dDEE9F6B43aC78BA3);
    /// @dev Completes Permit2's witness type stub; referenced types in alphabetical order, as EIP-712 requires.
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    /// @dev 1 while a settlement runs: the token is called in the middle, and must not call back in.
    uint256 private _entered;

    event Settled();

    error AmountExceedsPermitted();
    error InvalidOwner();
    error InvalidDestination();
    error PaymentTooEarly();
    error UnauthorizedFacilitator();
    error Reentrancy();

    /// @notice Moves `amount` (at most `permit.permitted.amount`; zero needs no call at all) to `witness.to`.
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external {
        if (_entered != 0) revert Reentrancy();
        _entered = 1;
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        bytes32 witnessHash =
            keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ISignatureTransfer.SignatureTransferDetails({to: witness.to, requestedAmount: amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
        _entered = 0;
        emit Settled();
    }
}
